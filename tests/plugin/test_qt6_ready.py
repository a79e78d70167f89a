"""QGIS 4 (Qt6) readiness without a QGIS 4 to run: the package holds none of the Qt5-only constructs that QGIS's
own migration checker (scripts/pyqt5_to_pyqt6/pyqt5_to_pyqt6.py in the QGIS repository) rewrites or warns about,
and none of the unscoped Processing enums QGIS 4 removed (its tests/test_processing_enums.py).

The scan is an AST walk, so comments and strings do not count. The only place unscoped Processing names may
appear is the QGIS < 3.36 fallback branch of terraform_plugin/qgis_compat.py.

Most of what the checker rewrites is unscoped enums of any Qt or QGIS class (``Qt.AlignLeft`` ->
``Qt.AlignmentFlag.AlignLeft``); it knows them from an enum table dumped from PyQt6. Here the running PyQt5/QGIS
says instead: ``Owner.Name`` where Owner is imported from qgis.* and Name resolves to an enum member, not to
the enum class, is the unscoped spelling.
"""

import ast
import enum
import importlib
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "terraform_plugin")

# Direct PyQt5 imports (QGIS 4 ships PyQt6; qgis.PyQt maps to whichever is there) and modules the checker rewrites.
BAD_MODULES = ("PyQt5", "sip", "qgis.PyQt.Qt")
BAD_IMPORTED_NAMES = {"QRegExp": "removed in Qt6 (QRegularExpression)", "qApp": "use QApplication.instance()",
                      "resources_rc": "compiled resources are gone in Qt6", "QDesktopWidget": "removed in Qt6"}
BAD_ATTRIBUTES = {
    "exec_": "exec_() is exec() in Qt6",
    "MidButton": "Qt.MouseButton.MiddleButton", "TextColorRole": "Qt.ItemDataRole.ForegroundRole",
    "BackgroundColorRole": "Qt.ItemDataRole.BackgroundRole", "HighQualityAntialiasing": "RenderHint.Antialiasing",
}
# Unscoped Processing enums QGIS 4 removed (Qgis.Processing*... since 3.36).
UNSCOPED_PROCESSING = {
    "QgsProcessingParameterNumber": {"Integer", "Double"},
    "QgsProcessingParameterFile": {"File", "Folder"},
    "QgsProcessingParameterDefinition": {"FlagAdvanced", "FlagOptional", "FlagHidden", "FlagIsModelOutput"},
    "QgsProcessingAlgorithm": {"FlagHideFromModeler", "FlagHideFromToolbox", "FlagNoThreading", "FlagCanCancel"},
    "QgsProcessing": {"TypeRaster", "TypeVectorAnyGeometry", "TypeFile", "TypeMapLayer"},
}
COMPAT_MODULE = os.path.join(PACKAGE, "qgis_compat.py")
FONT_METRICS = ("QFontMetrics", "QFontMetricsF")


def is_enum_member(value):
    return isinstance(value, enum.Enum) or type(type(value)).__name__ == "enumtype"  # Python or sip enums


def imported_qgis_names(tree):
    """{name: object} for every name the file imports from qgis.* (qgis.core, qgis.PyQt.QtCore ...)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qgis":
            try:
                module = importlib.import_module(node.module)
            except ImportError:
                continue
            for alias in node.names:
                if hasattr(module, alias.name):
                    names[alias.asname or alias.name] = getattr(module, alias.name)
    return names


def python_files():
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "deps")]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def fallback_lines(tree):
    """Line numbers inside ``except AttributeError:`` handlers (the QGIS < 3.36 fallbacks)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Name) and node.type.id == "AttributeError":
            for inner in ast.walk(node):
                if hasattr(inner, "lineno"):
                    lines.add(inner.lineno)
    return lines


def qt5_findings(path, source=None):
    source = source if source is not None else open(path, encoding="utf-8").read()
    tree = ast.parse(source, filename=path)
    allowed = fallback_lines(tree) if os.path.abspath(path) == COMPAT_MODULE else set()
    qgis_names = imported_qgis_names(tree)
    found = []

    def add(node, what):
        found.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in BAD_MODULES or alias.name in BAD_MODULES:
                    add(node, f"import {alias.name} (use qgis.PyQt)")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in BAD_MODULES or node.module in BAD_MODULES:
                add(node, f"from {node.module} import ... (use qgis.PyQt.QtCore/QtGui/QtWidgets)")
            for alias in node.names:
                if alias.name in BAD_IMPORTED_NAMES:
                    add(node, f"{alias.name}: {BAD_IMPORTED_NAMES[alias.name]}")
        elif isinstance(node, ast.Attribute):
            if node.attr in BAD_ATTRIBUTES:
                add(node, f".{node.attr}: {BAD_ATTRIBUTES[node.attr]}")
            if isinstance(node.value, ast.Name):
                owner = node.value.id
                if owner == "QVariant":
                    add(node, f"QVariant.{node.attr}: QVariant types/null checks are gone in QGIS 4 (use NULL, QMetaType)")
                if node.attr in UNSCOPED_PROCESSING.get(owner, ()) and node.lineno not in allowed:
                    add(node, f"{owner}.{node.attr}: unscoped enum removed in QGIS 4 (qgis_compat / Qgis.Processing*)")
                if owner == "qApp":
                    add(node, "qApp: use QApplication.instance()")
                if owner in qgis_names and node.lineno not in allowed and node.attr not in UNSCOPED_PROCESSING.get(
                        owner, ()) and is_enum_member(getattr(qgis_names[owner], node.attr, None)):
                    add(node, f"{owner}.{node.attr}: unscoped enum (Qt6 needs {owner}.<Enum>.{node.attr})")
            if node.attr == "width" and isinstance(node.value, ast.Call):
                maker = node.value.func
                if getattr(maker, "attr", None) == "fontMetrics" or getattr(maker, "id", None) in FONT_METRICS:
                    add(node, "QFontMetrics.width(): removed in Qt6 (horizontalAdvance)")
        elif isinstance(node, ast.FunctionDef) and node.name == "exec_":
            add(node, "def exec_: exec_() is exec() in Qt6")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "QVariant" and len(node.args) <= 1:
                add(node, "QVariant()/QVariant(QVariant.X) as a null value: use qgis.core.NULL")
            if isinstance(func, ast.Attribute) and func.attr == "isNull" and isinstance(func.value, ast.Call) \
                    and isinstance(func.value.func, ast.Name) and func.value.func.id == "QVariant":
                add(node, "QVariant(...).isNull(): a QVariant null check")
            if isinstance(func, ast.Attribute) and func.attr == "addAction" and len(node.args) >= 4:
                add(node, "addAction(icon, text, receiver, slot): fragile in Qt6, create a QAction")
            if isinstance(func, ast.Attribute) and func.attr == "desktop" and not node.args:
                add(node, "QApplication.desktop(): QDesktopWidget is removed in Qt6")
            if isinstance(func, ast.Name) and func.id == "QDateTime" and len(node.args) == 8:
                add(node, "QDateTime(y, m, d, h, M, s, ms, ts): use QDateTime(QDate, QTime, ts)")
            if isinstance(func, ast.Name) and func.id == "QDateTime" and len(node.args) == 1 \
                    and isinstance(node.args[0], ast.Call) and getattr(node.args[0].func, "id", None) == "QDate":
                add(node, "QDateTime(QDate(...)): use QDateTime(QDate(...), QTime(0, 0, 0))")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "activated" and isinstance(node.slice, ast.Name) and node.slice.id == "str":
            add(node, "activated[str]: removed in Qt6 (textActivated)")
    return found


def test_package_has_no_qt5_only_constructs():
    findings = [f for path in python_files() for f in qt5_findings(path)]
    assert findings == [], "\n".join(findings)


@pytest.mark.parametrize("snippet, expected", [
    ("from PyQt5.QtCore import QVariant\n", "use qgis.PyQt"),
    ("from qgis.PyQt.QtCore import QRegExp\n", "QRegExp"),
    ("dialog.exec_()\n", "exec_() is exec()"),
    ("x = QVariant()\n", "qgis.core.NULL"),
    ("ok = isinstance(v, QVariant) and v.isNull() or v == QVariant.Int\n", "QVariant.Int"),
    ("p = QgsProcessingParameterNumber('N', 'n', QgsProcessingParameterNumber.Integer)\n", "unscoped enum"),
    ("f = QgsProcessingParameterDefinition.FlagAdvanced\n", "unscoped enum"),
    ("w = combo.activated[str]\n", "activated[str]"),
    ("menu.addAction(icon, 'text', self, self.slot)\n", "fragile in Qt6"),
    ("from qgis.PyQt.QtCore import Qt\na = Qt.AlignLeft\n", "Qt.AlignLeft: unscoped enum"),
    ("from qgis.core import Qgis\nlevel = Qgis.Warning\n", "Qgis.Warning: unscoped enum"),
    ("w = self.fontMetrics().width('x')\n", "horizontalAdvance"),
    ("class D:\n    def exec_(self):\n        pass\n", "def exec_"),
    ("d = QDateTime(QDate(2026, 3, 6))\n", "QTime(0, 0, 0)"),
])
def test_the_scan_catches_each_construct(tmp_path, snippet, expected):
    """Each rule fires on a minimal example, so the empty result above means something."""
    path = tmp_path / "sample.py"
    path.write_text(snippet)
    findings = qt5_findings(str(path))
    assert any(expected in f for f in findings), findings


def test_scoped_spellings_are_not_reported(tmp_path):
    """The scoped forms, and class attributes that are not enum members, pass the unscoped-enum rule."""
    path = tmp_path / "sample.py"
    path.write_text("from qgis.PyQt.QtCore import QProcess, Qt\nfrom qgis.core import QgsApplication\n"
                    "a = Qt.AlignmentFlag.AlignLeft\nm = QProcess.ProcessChannelMode.MergedChannels\n"
                    "r = QgsApplication.processingRegistry()\n")
    assert qt5_findings(str(path)) == []


def test_unscoped_names_only_in_the_compat_fallback():
    with open(COMPAT_MODULE, encoding="utf-8") as f:
        source = f.read()
    assert "except AttributeError:" in source and "QgsProcessingParameterNumber.Integer" in source
    assert qt5_findings(COMPAT_MODULE, source) == []
    # The same lines outside the fallback branch are reported.
    moved = source.replace("except AttributeError:", "except ImportError:")
    assert any("unscoped enum" in f for f in qt5_findings(COMPAT_MODULE, moved))


def test_scoped_enums_used_where_qgis_has_them(qgis_app):
    from qgis.core import Qgis

    from terraform_plugin import qgis_compat

    if hasattr(Qgis, "ProcessingParameterFlag"):
        assert qgis_compat.SCOPED_ENUMS and qgis_compat.FLAG_ADVANCED == Qgis.ProcessingParameterFlag.Advanced
    else:  # QGIS 3.22 - 3.34: the fallback values, which QGIS accepts as flags
        assert not qgis_compat.SCOPED_ENUMS and int(qgis_compat.FLAG_ADVANCED) > 0
