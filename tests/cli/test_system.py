"""The system libraries and fonts of the PDF report: found through dlopen and fontconfig, and when one is
missing, `auditkit run` and `auditkit render` stop before any work with one line naming what to install."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

from auditkit import system
from auditkit.cli import main
from auditkit.errors import InputError, SystemDependencyError

PANGO_LINE = ("missing system dependency of the PDF report (WeasyPrint): Pango; install it with "
              "`sudo apt-get install libpango-1.0-0` (Debian/Ubuntu) or `brew install pango` (macOS)")


@pytest.fixture
def no_pango(monkeypatch):
    """dlopen fails for every name of Pango (and only Pango: PangoFT2's names differ)."""
    real = system.load_library
    pango_names = next(req.names for req in system.LIBRARIES if req.what == "Pango")

    def load(name):
        if name in pango_names:
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return real(name)

    monkeypatch.setattr(system, "load_library", load)


def test_this_machine_has_every_library_and_font():
    assert system.missing_system_dependencies() == []


def test_fonts_are_counted_by_exact_family_not_by_fontconfig_substitution():
    fontconfig = system.load_library("libfontconfig.so.1")
    assert system.font_files(fontconfig, "DejaVu Sans") >= 1
    assert system.font_files(fontconfig, "DejaVu Sans Mono") >= 1
    assert system.font_files(fontconfig, "No Such Family auditkit") == 0     # fc-match would substitute one


def test_a_missing_library_is_named_with_its_packages(no_pango):
    assert [req.what for req in system.missing_system_dependencies()] == ["Pango"]
    with pytest.raises(SystemDependencyError) as info:
        system.check_system()
    assert str(info.value) == PANGO_LINE
    assert isinstance(info.value, InputError)


def test_missing_libraries_and_fonts_are_listed_together_with_each_package_once(monkeypatch):
    monkeypatch.setattr(system, "load_library", lambda name: (_ for _ in ()).throw(OSError(name)))
    assert system.describe(system.missing_system_dependencies()) == (
        "missing system dependency of the PDF report (WeasyPrint): GLib's GObject, Pango, PangoFT2, HarfBuzz, "
        "fontconfig; install them with `sudo apt-get install libglib2.0-0 libpango-1.0-0 libpangoft2-1.0-0 "
        "libharfbuzz0b libfontconfig1` (Debian/Ubuntu) or `brew install glib pango harfbuzz fontconfig` (macOS)")
    monkeypatch.undo()
    monkeypatch.setattr(system, "font_files", lambda fc, family: 0 if family.startswith("DejaVu") else 1)
    assert system.describe(system.missing_system_dependencies()) == (
        "missing system dependency of the PDF report (WeasyPrint): the DejaVu Sans font, the DejaVu Sans Mono "
        "font; install them with `sudo apt-get install fonts-dejavu-core` (Debian/Ubuntu) or "
        "`brew install font-dejavu` (macOS)")


def test_bootstrap_check_prints_the_line_and_fails(no_pango, capsys):
    assert system.main() == 1
    assert capsys.readouterr().err == f"auditkit: {PANGO_LINE}\n"


def test_run_stops_with_exit_2_before_any_work(no_pango, tmp_path, monkeypatch, capsys):
    def no_work(*args, **kwargs):
        raise AssertionError("the audit started although a system library is missing")

    monkeypatch.setattr("auditkit.runner.run_audit", no_work)
    monkeypatch.setattr("auditkit.runner.history_store", no_work)
    code = main(["run", str(ROOT / "examples/heart_disease/audit.yaml"), "--out", str(tmp_path / "report"),
                 "--quiet"])
    assert code == 2
    assert capsys.readouterr().err == f"auditkit: error: {PANGO_LINE}\n"
    assert list(tmp_path.iterdir()) == []                                   # nothing written


def test_render_stops_with_exit_2_and_leaves_the_run_alone(no_pango, tmp_path, capsys):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"schema": "auditkit.run/1"}))
    assert main(["render", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"auditkit: error: {PANGO_LINE}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    assert json.loads(run.read_text()) == {"schema": "auditkit.run/1"}
