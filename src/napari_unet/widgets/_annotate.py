"""Annotate: choose the image, create or choose the annotation layer, name the classes."""

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ..annotations import MAX_CLASSES, default_class_names
from . import _jobs
from ._combo import LayerCombo
from ._layers import (
    CLASS_NAMES_KEY,
    annotation_counts,
    class_colormap,
    class_names,
    placement,
    set_class_names,
    spatial_shape,
)
from ._session import Session

COLOR, LABEL, NAME, PIXELS, SLICES = range(5)
NO_COUNTS = ({}, {}, 0, 1)
ROW_HEIGHT = 24


class ClassTable(QTableWidget):
    """A table as tall as its rows, so that every class shows without scrolling."""

    def sizeHint(self) -> QSize:
        height = self.horizontalHeader().sizeHint().height() + self.rowCount() * ROW_HEIGHT
        return QSize(super().sizeHint().width(), height + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()


class AnnotateSection(QGroupBox):
    """The image and its annotations (0 = none, 1 = background, 2.. = classes), with counts."""

    def __init__(self, session: Session, parent=None):
        super().__init__("1 · Annotate", parent)
        self.session = session
        viewer = session.viewer
        self.image_combo = LayerCombo(viewer, Image)
        self.annotations_combo = LayerCombo(viewer, Labels)
        self.new_button = QPushButton("New")
        self.new_button.setToolTip("Create an empty annotation layer for the image")
        self.new_button.clicked.connect(self.new_annotations)
        self.table = ClassTable(0, 5)
        self.table.setHorizontalHeaderLabels(["", "id", "class", "pixels", "slices"])
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        for column in (COLOR, LABEL, PIXELS, SLICES):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip("Double-click a name to rename the class; click a row to paint it")
        self.table.itemChanged.connect(self._renamed)
        self.table.itemSelectionChanged.connect(self._row_chosen)
        self.add_button = QPushButton("Add class")
        self.add_button.clicked.connect(self.add_class)
        self.summary = QLabel()
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        choose = QHBoxLayout()
        choose.addWidget(self.annotations_combo, 1)
        choose.addWidget(self.new_button)
        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Annotations", choose)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table)
        row = QHBoxLayout()
        row.addWidget(self.summary, 1)
        row.addWidget(self.add_button)
        layout.addLayout(row)

        self._recount = QTimer(self, singleShot=True, interval=250)
        self._recount.timeout.connect(self.recount)
        self._refresh_later = QTimer(self, singleShot=True, interval=250)
        self._refresh_later.timeout.connect(self.refresh)
        self._counts = NO_COUNTS
        self._counter = None
        self._stale = False
        self._layer: Labels | None = None
        self.annotations_combo.currentIndexChanged.connect(self._annotations_chosen)
        self._annotations_chosen()

    def image(self) -> Image | None:
        return self.image_combo.layer()

    def annotations(self) -> Labels | None:
        return self.annotations_combo.layer()

    def new_annotations(self) -> Labels | None:
        """Add an empty annotation layer over the image, brush ready on the first class."""
        image = self.image()
        if image is None:
            show_error("Open an image first: annotations are painted over an image layer.")
            return None
        model = self.session.model
        names = list(model.class_names) if model else default_class_names(2)
        layer = self.session.viewer.add_labels(
            np.zeros(spatial_shape(image), dtype=np.uint8),
            name=f"{image.name} annotations",
            colormap=class_colormap(),
            metadata={CLASS_NAMES_KEY: names},
            **placement(image),
        )
        layer.selected_label = 2
        layer.mode = "paint"
        self.annotations_combo.choose(layer)
        return layer

    def add_class(self) -> None:
        """Append a class and select it for painting."""
        layer = self.annotations()
        if layer is None:
            show_error("Create or choose an annotation layer first.")
            return
        names = class_names(layer, self.table.rowCount())
        names.append(f"class {len(names) + 1}")
        set_class_names(layer, names)
        layer.selected_label = len(names)
        self.refresh()

    def recount(self) -> None:
        """Count the annotated pixels again, in a thread: numpy releases the GIL while it
        counts, where a large stack would block napari for a second."""
        if self._counter is not None:
            self._stale = True
            return
        if self._layer is None:
            self._counts = NO_COUNTS
            self.refresh()
            return
        self._counter = _jobs.start(
            annotation_counts,
            self._layer.data,
            returned=self._counted,
            errored=self._count_failed,
            finished=self._count_finished,
        )

    def refresh(self) -> None:
        """Show every class with its colour, name and how much of it is annotated."""
        if self.table.state() == QAbstractItemView.State.EditingState:
            self._refresh_later.start()
            return
        layer = self.annotations()
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        if layer is None:
            self.summary.setText("No annotations yet: click New.")
        else:
            pixels, slices, annotated, total = self._counts
            highest = max(pixels, default=0)
            names = class_names(layer, min(highest, MAX_CLASSES))
            self.table.setRowCount(len(names))
            for row, name in enumerate(names):
                label = row + 1
                color = QTableWidgetItem(swatch(layer.colormap.map(label)), "")
                cells = {
                    COLOR: color,
                    LABEL: QTableWidgetItem(str(label)),
                    NAME: QTableWidgetItem(name),
                    PIXELS: QTableWidgetItem(f"{pixels.get(label, 0):,}"),
                    SLICES: QTableWidgetItem(str(slices.get(label, 0))),
                }
                for column, item in cells.items():
                    if column != NAME:
                        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                    if column in (LABEL, PIXELS, SLICES):
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight)
                    self.table.setItem(row, column, item)
            where = f" in {annotated} of {total} slices" if total > 1 else " annotated"
            self.summary.setText(f"{sum(pixels.values()):,} pixels{where}")
            if highest > MAX_CLASSES:
                self.summary.setText(f"Ids up to {highest}: instance labels, not classes?")
            self.table.setColumnHidden(SLICES, total == 1)
            self._select_row(layer.selected_label)
        self.table.blockSignals(False)
        self.table.updateGeometry()

    def _annotations_chosen(self, index=None) -> None:
        if self._layer is not None:
            for emitter in self._watched(self._layer):
                emitter.disconnect(self._changed)
            self._layer.events.selected_label.disconnect(self._label_selected)
        self._layer = self.annotations()
        if self._layer is not None:
            for emitter in self._watched(self._layer):
                emitter.connect(self._changed)
            self._layer.events.selected_label.connect(self._label_selected)
        self._counts = NO_COUNTS
        self.refresh()
        self.recount()

    @staticmethod
    def _watched(layer: Labels):
        return (layer.events.paint, layer.events.data, layer.events.set_data)

    def _changed(self, event=None) -> None:
        self._recount.start()

    def _counted(self, counts) -> None:
        if not self._stale:
            self._counts = counts
            self.refresh()

    def _count_failed(self, error: BaseException) -> None:
        _jobs.notify_error("Counting the annotations failed", error)

    def _count_finished(self) -> None:
        self._counter = None
        if self._stale:
            self._stale = False
            self.recount()

    def _label_selected(self, event=None) -> None:
        if self._layer is not None:
            self._select_row(self._layer.selected_label)

    def _select_row(self, label: int) -> None:
        self.table.blockSignals(True)
        if 1 <= label <= self.table.rowCount():
            self.table.selectRow(label - 1)
        else:
            self.table.clearSelection()
        self.table.blockSignals(False)

    def _row_chosen(self) -> None:
        layer, rows = self.annotations(), self.table.selectionModel().selectedRows()
        if layer is not None and rows:
            layer.selected_label = rows[0].row() + 1

    def _renamed(self, item: QTableWidgetItem) -> None:
        layer = self.annotations()
        if layer is None or item.column() != NAME:
            return
        names = class_names(layer, self.table.rowCount())
        names[item.row()] = item.text().strip() or names[item.row()]
        set_class_names(layer, names)


def swatch(rgba) -> QIcon:
    """A small square of the colour ``rgba`` (0..1 floats)."""
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor.fromRgbF(*(float(c) for c in rgba)))
    return QIcon(pixmap)
