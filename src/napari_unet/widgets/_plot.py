"""The live loss plot: the running mean of the loss and the validation Dice, across rounds.

The loss of single steps varies too much (0.2-0.9 on sparse annotations) to read a trend, so
only its running mean is drawn; the Dice score is drawn when part of the annotations is held
back (it is None otherwise).

Drawn with QPainter: a matplotlib redraw took 40 ms on an idle core and 130-250 ms beside
training, longer than the 100 ms the event loop may be blocked.
"""

import math

from napari.utils.theme import get_theme
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

from ..engine.train import TrainProgress

LOSS_COLOR = QColor("#ffb800")
DICE_COLOR = QColor("#4fd2e6")
MARGINS = (38, 16, 38, 22)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= ``value`` (> 0)."""
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def tick_label(value: float) -> str:
    return f"{value:g}" if value < 1000 else f"{value / 1000:g}k"


def readable_loss(progress: TrainProgress) -> float:
    """The running mean of the loss (the step's loss before there is one)."""
    return progress.loss if progress.mean_loss is None else progress.mean_loss


class LossPlot(QWidget):
    """Points arrive with every step; the owner calls ``update()`` to repaint."""

    def __init__(self, theme: str = "dark", parent=None):
        super().__init__(parent)
        colors = get_theme(theme)
        self.background = QColor(colors.background.as_hex())
        self.text = QColor(colors.text.as_hex())
        self.frame = QColor(colors.primary.as_hex())
        self.setMinimumHeight(100)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.clear()

    def clear(self) -> None:
        """Forget all rounds: a new model starts."""
        self.steps: list[int] = []
        self.smoothed: list[float] = []
        self.dice_steps: list[int] = []
        self.dice: list[float] = []
        self.rounds: list[int] = []
        self._offset = 0
        self.update()

    def start_round(self) -> None:
        """Continue the step axis after the previous round, marked by a dotted line."""
        if self.steps:
            self._offset = self.steps[-1]
            self.rounds.append(self._offset)

    def add(self, progress: TrainProgress) -> None:
        step = self._offset + progress.step
        self.steps.append(step)
        self.smoothed.append(readable_loss(progress))
        if progress.validation_dice is not None:
            self.dice_steps.append(step)
            self.dice.append(progress.validation_dice)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), self.background)
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        left, top, right, bottom = MARGINS
        area = QRectF(left, top, self.width() - left - right, self.height() - top - bottom)
        last_step = nice_ceiling(max(10, self.steps[-1] if self.steps else 10))
        top_loss = nice_ceiling(max(self.smoothed, default=1.0) or 1.0)

        def point(step: float, value: float, high: float) -> QPointF:
            x = area.left() + area.width() * step / last_step
            return QPointF(x, area.bottom() - area.height() * min(value / high, 1.0))

        self._axes(painter, area, last_step, top_loss)
        for step in self.rounds:
            painter.setPen(QPen(self.text, 1, Qt.PenStyle.DotLine))
            painter.drawLine(point(step, 0, 1), point(step, 1, 1))

        def curve(steps: list[int], values: list[float], high: float) -> list[QPointF]:
            """Points to draw, at most about two per pixel of width."""
            stride = max(1, len(steps) // max(1, 2 * round(area.width())))
            pairs = zip(steps[::stride], values[::stride], strict=True)
            return [point(s, v, high) for s, v in pairs]

        self._line(painter, curve(self.steps, self.smoothed, top_loss), LOSS_COLOR, 1.6)
        dice = curve(self.dice_steps, self.dice, 1.0)
        self._line(painter, dice, DICE_COLOR, 1.2)
        painter.setBrush(DICE_COLOR)
        for p in dice:
            painter.drawEllipse(p, 2.5, 2.5)
        painter.end()

    def _axes(self, painter: QPainter, area: QRectF, last_step: float, top_loss: float) -> None:
        painter.setPen(QPen(self.frame, 1))
        painter.drawRect(area)
        metrics = painter.fontMetrics()
        height = metrics.height()
        for fraction in (0.0, 0.5, 1.0):
            y = area.bottom() - fraction * area.height()
            painter.setPen(LOSS_COLOR)
            label = tick_label(fraction * top_loss)
            box = QRectF(0, y - height / 2, area.left() - 4, height)
            painter.drawText(box, Qt.AlignmentFlag.AlignRight, label)
            if self.dice:
                painter.setPen(DICE_COLOR)
                box = QRectF(area.right() + 4, y - height / 2, 40, height)
                painter.drawText(box, Qt.AlignmentFlag.AlignLeft, f"{fraction:g}")
            x = area.left() + fraction * area.width()
            painter.setPen(self.text)
            box = QRectF(x - 30, area.bottom() + 2, 60, height)
            label = tick_label(fraction * last_step) + (" steps" if fraction == 1 else "")
            painter.drawText(box, Qt.AlignmentFlag.AlignHCenter, label)
        title = QRectF(area.left(), 0, area.width(), area.top())
        painter.setPen(LOSS_COLOR)
        painter.drawText(title, Qt.AlignmentFlag.AlignLeft, "loss (running mean)")
        painter.setPen(DICE_COLOR)
        if self.dice:
            painter.drawText(title, Qt.AlignmentFlag.AlignRight, "validation Dice")

    @staticmethod
    def _line(painter: QPainter, points: list[QPointF], color: QColor, width: float = 1.0):
        if len(points) < 2:
            return
        path = QPainterPath(points[0])
        for p in points[1:]:
            path.lineTo(p)
        painter.setPen(QPen(color, width))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
