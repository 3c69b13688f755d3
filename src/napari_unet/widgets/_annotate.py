"""Annotate: choose the image, create or choose the annotation layer, paint classes or objects."""

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ..engine.annotations import BACKGROUND, MAX_CLASSES, default_class_names
from . import _jobs
from ._combo import LayerCombo
from ._layers import (
    CLASS_NAMES_KEY,
    CLASSES,
    OBJECTS,
    OUTPUT_KEY,
    PAINT_KEY,
    Counts,
    annotation_counts,
    class_colormap,
    class_names,
    free_name,
    image_data,
    is_image_to_segment,
    objects_colormap,
    paints_objects,
    placement,
    set_class_names,
    spatial_shape,
    unsuitable,
)
from ._session import Session

COLOR, LABEL, NAME, PIXELS, SLICES = range(5)
ROW_HEIGHT = 24
MIN_ROWS = 2
PAINT_MODES = {
    CLASSES: "classes (one id per class)",
    OBJECTS: "objects (each object its own id)",
}


class ClassTable(QTableWidget):
    """A table as tall as its rows, so that every class shows without scrolling, and never
    shorter than background and one class: the rows appearing would push the dock's
    buttons away under the cursor."""

    def sizeHint(self) -> QSize:
        rows = max(self.rowCount(), MIN_ROWS)
        height = self.horizontalHeader().sizeHint().height() + rows * ROW_HEIGHT
        return QSize(super().sizeHint().width(), height + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()


class AnnotateSection(QGroupBox):
    """The image and its annotations (0 = none, 1 = background, 2.. = classes, or 2.. = one
    id per object of one class), with counts."""

    def __init__(self, session: Session, parent=None):
        super().__init__("1 · Annotate", parent)
        self.session = session
        viewer = session.viewer
        self.image_combo = LayerCombo(viewer, Image, accept=is_image_to_segment)
        self.annotations_combo = LayerCombo(
            viewer,
            Labels,
            accept=self._fits,
            prefer=lambda layer: not layer.metadata.get(OUTPUT_KEY),
        )
        self.image_combo.currentIndexChanged.connect(self.annotations_combo.refresh)
        self.annotations_combo.setPlaceholderText("none: click New")
        self.annotations_combo.setToolTip(
            "Labels layers of the image's shape. A prediction is listed but never chosen for "
            "you: training on it teaches the model its own answers"
        )
        self.new_button = QPushButton("New")
        self.new_button.setToolTip("Create an empty annotation layer over the image")
        self.new_button.clicked.connect(self.new_annotations)
        self.paint_mode = QComboBox()
        for mode, text in PAINT_MODES.items():
            self.paint_mode.addItem(text, mode)
        self.paint_mode.setToolTip(
            "Classes: paint background (1) and each class with its id.\n"
            "Objects: paint background (1) and each object of one class with an id of its "
            "own (New object, or napari's M key); touching objects are then separated, "
            "which teaches the network to split them."
        )
        self.paint_mode.currentIndexChanged.connect(self._paint_mode_chosen)
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
        self.table.setToolTip("Click a row to paint it; double-click a name to rename the class")
        self.table.itemChanged.connect(self._renamed)
        self.table.itemSelectionChanged.connect(self._row_chosen)
        self.table.clicked.connect(self._row_chosen)
        self.add_button = QPushButton("Add class")
        self.add_button.clicked.connect(self.add_class)
        self.new_object_button = QPushButton("New object")
        self.new_object_button.setToolTip("Paint the next object with a new id (napari's M key)")
        self.new_object_button.clicked.connect(self.new_object)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setMinimumHeight(2 * self.summary.fontMetrics().lineSpacing())

        choose = QHBoxLayout()
        choose.addWidget(self.annotations_combo, 1)
        choose.addWidget(self.new_button)
        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Annotations", choose)
        form.addRow("Paint", self.paint_mode)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table)
        below = QHBoxLayout()
        below.addWidget(self.summary, 1)
        below.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignTop)
        below.addWidget(self.new_object_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(below)

        self._recount = QTimer(self, singleShot=True, interval=250)
        self._recount.timeout.connect(self.recount)
        self._refresh_later = QTimer(self, singleShot=True, interval=250)
        self._refresh_later.timeout.connect(self.refresh)
        self._counts = Counts()
        self._counter = None
        self._stale = False
        self._layer: Labels | None = None
        self.annotations_combo.currentIndexChanged.connect(self._annotations_chosen)
        self._annotations_chosen()

    def image(self) -> Image | None:
        return self.image_combo.layer()

    def annotations(self) -> Labels | None:
        return self.annotations_combo.layer()

    def objects_mode(self) -> bool:
        return self.paint_mode.currentData() == OBJECTS

    def new_annotations(self) -> Labels | None:
        """Add an empty annotation layer over the image, brush ready on the first class (or
        object), in the chosen paint mode."""
        image = self.image()
        if image is None:
            show_error("Open an image first: annotations are painted over an image layer.")
            return None
        if problem := unsuitable(image):
            show_error(f"Cannot annotate: {problem}")
            return None
        model = self.session.model
        names = list(model.class_names) if model else default_class_names(2)
        objects = self.objects_mode()
        viewer = self.session.viewer
        name = free_name(viewer, f"{image.name} annotations")
        shape = spatial_shape(image)
        slices = f" over {shape[0]} slices" if len(shape) == 3 else ""
        self.summary.setText(f"Creating '{name}'{slices}…")
        self.summary.repaint()  # napari takes seconds to add a large layer: say so first
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            layer = viewer.add_labels(
                np.zeros(shape, dtype=np.uint16 if objects else np.uint8),
                name=name,
                colormap=objects_colormap() if objects else class_colormap(),
                metadata={
                    CLASS_NAMES_KEY: names[:2] if objects else names,
                    PAINT_KEY: OBJECTS if objects else CLASSES,
                },
                **placement(image),
            )
        finally:
            QApplication.restoreOverrideCursor()
        self.annotations_combo.choose(layer)
        self._paint(layer, 2)
        return layer

    def new_object(self) -> None:
        """Paint the next object with an id no object has yet (napari's "new label")."""
        layer = self.annotations()
        if layer is None:
            show_error("Create or choose an annotation layer first.")
            return
        data = image_data(layer)
        label = max(int(np.max(data)) + 1, 2)
        if np.issubdtype(data.dtype, np.integer) and label > np.iinfo(data.dtype).max:
            show_error(
                f"'{layer.name}' holds {data.dtype} ids, at most {np.iinfo(data.dtype).max}: "
                "paint objects on a layer made with New while Paint is set to objects."
            )
            return
        self._paint(layer, label)

    def add_class(self) -> None:
        """Append a class and select it for painting."""
        layer = self.annotations()
        if layer is None:
            show_error("Create or choose an annotation layer first.")
            return
        names = class_names(layer, self.table.rowCount())
        if len(names) >= MAX_CLASSES:
            show_error(f"A model has at most {MAX_CLASSES} classes, background included.")
            return
        names.append(f"class {len(names) + 1}")
        set_class_names(layer, names)
        self._paint(layer, len(names))
        self.refresh()

    def recount(self) -> None:
        """Count the annotated pixels again, in a thread: numpy releases the GIL while it
        counts, where a large stack would block napari for a second."""
        if self._counter is not None:
            self._stale = True
            return
        if self._layer is None:
            self._counts = Counts()
            self.refresh()
            return
        self._counter = _jobs.start(
            annotation_counts,
            image_data(self._layer),
            paints_objects(self._layer),
            returned=self._counted,
            errored=self._count_failed,
            finished=self._count_finished,
        )

    def refresh(self) -> None:
        """Show every class (or background and the objects) with its colour, name and how
        much of it is annotated."""
        if self.table.state() == QAbstractItemView.State.EditingState:
            self._refresh_later.start()
            return
        layer = self.annotations()
        objects = layer is not None and paints_objects(layer)
        self.add_button.setVisible(not objects)
        self.new_object_button.setVisible(objects)
        rows = []
        if layer is None:
            image = self.image()
            others = any(isinstance(x, Labels) for x in self.session.viewer.layers)
            self.summary.setText(
                f"No annotations of the shape of '{image.name}' yet: click New."
                if image is not None and others
                else "No annotations yet: click New."
            )
        else:
            counts = self._counts
            pixels, slices = counts.pixels, counts.slices
            if objects:
                names = class_names(layer, 2)[:2]
            else:
                names = class_names(layer, min(counts.highest, MAX_CLASSES))
            for row, name in enumerate(names):
                label = row + 1
                rows.append(
                    {
                        COLOR: layer.colormap.map(label),
                        LABEL: f"{label}+" if objects and row else str(label),
                        NAME: name,
                        PIXELS: f"{pixels.get(label, 0):,}",
                        SLICES: str(slices.get(label, 0)),
                    }
                )
            total = counts.total
            where = f" in {counts.annotated} of {total} slices" if total > 1 else " annotated"
            text = f"{sum(pixels.values()):,} pixels{where}"
            if objects:
                following = max(counts.highest + 1, 2)
                text = f"{counts.objects:,} objects, {text}; next object id {following}"
            elif counts.highest > MAX_CLASSES:
                text = f"Ids up to {counts.highest}: objects? Choose Paint: objects."
            self.summary.setText(text)
            self.table.setColumnHidden(SLICES, total == 1)
        self._fill(rows)
        if layer is not None:
            self._select_row(layer.selected_label)

    def _fill(self, rows: list[dict]) -> None:
        """Show ``rows`` in the table, changing only the cells that differ: rebuilding it
        would lay out the dock again at each count."""
        table = self.table
        table.blockSignals(True)
        resized = table.rowCount() != len(rows)
        if resized:
            table.setRowCount(len(rows))
        for row, cells in enumerate(rows):
            for column, value in cells.items():
                item = table.item(row, column)
                if item is None:
                    item = QTableWidgetItem()
                    if column in (LABEL, PIXELS, SLICES):
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight)
                    if column != NAME:
                        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                    table.setItem(row, column, item)
                if column == COLOR:
                    item.setIcon(swatch(value))
                elif item.text() != value:
                    item.setText(value)
        table.blockSignals(False)
        if resized:
            table.updateGeometry()

    def _fits(self, layer: Labels) -> bool:
        """Annotations must have the image's shape; object outputs are not annotations."""
        image = self.image()
        return layer.metadata.get(OUTPUT_KEY) != "instances" and (
            image is None or tuple(image_data(layer).shape) == spatial_shape(image)
        )

    def _paint(self, layer: Labels, label: int) -> None:
        """Select ``layer`` in the viewer with the brush on ``label``."""
        layer.selected_label = label
        layer.mode = "paint"
        self.session.viewer.layers.selection.active = layer

    def _paint_mode_chosen(self, index=None) -> None:
        layer = self.annotations()
        if layer is None or paints_objects(layer) == self.objects_mode():
            return
        objects = self.objects_mode()
        layer.metadata[PAINT_KEY] = OBJECTS if objects else CLASSES
        layer.colormap = objects_colormap() if objects else class_colormap()
        self.refresh()

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
            self.paint_mode.blockSignals(True)
            self.paint_mode.setCurrentIndex(
                self.paint_mode.findData(OBJECTS if paints_objects(self._layer) else CLASSES)
            )
            self.paint_mode.blockSignals(False)
        self._counts = Counts()
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
        if self._layer is not None and paints_objects(self._layer):
            label = min(label, 2)
        if 1 <= label <= self.table.rowCount():
            self.table.selectRow(label - 1)
        else:
            self.table.clearSelection()
        self.table.blockSignals(False)

    def _row_chosen(self, index=None) -> None:
        layer, rows = self.annotations(), self.table.selectionModel().selectedRows()
        if layer is None or not rows:
            return
        label = rows[0].row() + 1
        if paints_objects(layer) and label > BACKGROUND:
            self.new_object()
        else:
            self._paint(layer, label)

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
