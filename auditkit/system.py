"""The system libraries and fonts auditkit needs outside Python, and a check that they are there.

Only the PDF report needs anything beyond pip-installable packages: WeasyPrint lays out text with GLib's
GObject, Pango (and PangoFT2), HarfBuzz and fontconfig, which it loads with ``dlopen`` when it is imported,
and the report's stylesheet asks for the DejaVu Sans and DejaVu Sans Mono fonts. Without a library,
importing WeasyPrint fails with a long message after the whole audit has been computed; without the fonts,
fontconfig silently substitutes another font. :func:`check_system` finds both before any work is done,
looking the libraries up under the same names WeasyPrint tries, and the fonts through fontconfig itself.

This module uses the standard library only, so that ``scripts/bootstrap.sh`` can run it
(``python auditkit/system.py``-style, through :func:`runpy.run_path`) before anything is installed.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    """One system library or font: ``what`` it is called in messages, the ``names`` it is looked up under,
    and the package that provides it on Debian/Ubuntu (``apt``) and on macOS with Homebrew (``brew``)."""

    what: str
    names: tuple[str, ...]
    apt: str
    brew: str


#: The shared libraries WeasyPrint loads (the names are those weasyprint/text/ffi.py tries, in its order).
LIBRARIES = (
    Requirement("GLib's GObject", ("libgobject-2.0-0", "gobject-2.0-0", "gobject-2.0", "libgobject-2.0.so.0",
                                   "libgobject-2.0.dylib", "libgobject-2.0-0.dll"), "libglib2.0-0", "glib"),
    Requirement("Pango", ("libpango-1.0-0", "pango-1.0-0", "pango-1.0", "libpango-1.0.so.0", "libpango-1.0.dylib",
                          "libpango-1.0-0.dll"), "libpango-1.0-0", "pango"),
    Requirement("PangoFT2", ("libpangoft2-1.0-0", "pangoft2-1.0-0", "pangoft2-1.0", "libpangoft2-1.0.so.0",
                             "libpangoft2-1.0.dylib", "libpangoft2-1.0-0.dll"), "libpangoft2-1.0-0", "pango"),
    Requirement("HarfBuzz", ("libharfbuzz-0", "harfbuzz", "harfbuzz-0.0", "libharfbuzz.so.0", "libharfbuzz.0.dylib",
                             "libharfbuzz-0.dll"), "libharfbuzz0b", "harfbuzz"),
    Requirement("fontconfig", ("libfontconfig-1", "fontconfig-1", "fontconfig", "libfontconfig.so.1",
                               "libfontconfig.1.dylib", "libfontconfig-1.dll"), "libfontconfig1", "fontconfig"),
)

#: The font families the report's stylesheet (templates/report.css) names.
FONTS = (
    Requirement("the DejaVu Sans font", ("DejaVu Sans",), "fonts-dejavu-core", "font-dejavu"),
    Requirement("the DejaVu Sans Mono font", ("DejaVu Sans Mono",), "fonts-dejavu-core", "font-dejavu"),
)


def load_library(name: str) -> ctypes.CDLL:
    """Load the shared library ``name`` as ``dlopen`` finds it (raises ``OSError`` when it cannot)."""
    return ctypes.CDLL(name)


def _first_loadable(req: Requirement) -> ctypes.CDLL | None:
    for name in req.names:
        try:
            return load_library(name)
        except OSError:
            continue
    return None


class _FcFontSet(ctypes.Structure):
    _fields_ = [("nfont", ctypes.c_int), ("sfont", ctypes.c_int), ("fonts", ctypes.c_void_p)]


def font_files(fontconfig: ctypes.CDLL, family: str) -> int:
    """How many font files fontconfig knows whose family is exactly ``family`` (``FcFontList``, no
    substitution: a fallback font does not count)."""
    fc = fontconfig
    fc.FcPatternCreate.restype = ctypes.c_void_p
    fc.FcPatternAddString.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    fc.FcObjectSetCreate.restype = ctypes.c_void_p
    fc.FcObjectSetAdd.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    fc.FcFontList.restype = ctypes.POINTER(_FcFontSet)
    fc.FcFontList.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    fc.FcFontSetDestroy.argtypes = [ctypes.POINTER(_FcFontSet)]
    fc.FcPatternDestroy.argtypes = [ctypes.c_void_p]
    fc.FcObjectSetDestroy.argtypes = [ctypes.c_void_p]
    pattern = fc.FcPatternCreate()
    fc.FcPatternAddString(pattern, b"family", family.encode())
    objects = fc.FcObjectSetCreate()
    fc.FcObjectSetAdd(objects, b"file")
    found = fc.FcFontList(None, pattern, objects)
    try:
        return found.contents.nfont if found else 0
    finally:
        if found:
            fc.FcFontSetDestroy(found)
        fc.FcObjectSetDestroy(objects)
        fc.FcPatternDestroy(pattern)


def missing_system_dependencies() -> list[Requirement]:
    """The libraries of :data:`LIBRARIES` that cannot be loaded and the fonts of :data:`FONTS` that
    fontconfig does not know (fonts are checked only when fontconfig itself loads)."""
    missing = [req for req in LIBRARIES if _first_loadable(req) is None]
    fontconfig = _first_loadable(LIBRARIES[-1])
    if fontconfig is not None:
        missing += [req for req in FONTS if font_files(fontconfig, req.names[0]) == 0]
    return missing


def describe(missing: list[Requirement]) -> str:
    """One line: what is missing, what needs it, and the apt and brew packages that provide it."""
    what = ", ".join(req.what for req in missing)
    apt = " ".join(dict.fromkeys(req.apt for req in missing))
    brew = " ".join(dict.fromkeys(req.brew for req in missing))
    it = "it" if len(missing) == 1 else "them"
    return (f"missing system dependency of the PDF report (WeasyPrint): {what}; install {it} with "
            f"`sudo apt-get install {apt}` (Debian/Ubuntu) or `brew install {brew}` (macOS)")


def check_system() -> None:
    """Raise :class:`auditkit.errors.SystemDependencyError` (one line, naming what to install) when a
    library or font of the PDF report is missing; return ``None`` when everything is there."""
    missing = missing_system_dependencies()
    if missing:
        from .errors import SystemDependencyError
        raise SystemDependencyError(describe(missing))


def main() -> int:
    """Print what is missing and return 1, or return 0 (run by scripts/bootstrap.sh before installing)."""
    missing = missing_system_dependencies()
    if missing:
        print(f"auditkit: {describe(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
