"""The image-delivery tuning keeps re-polling a still-encoding image until it is ready."""

from __future__ import annotations

from webviewer.app import image_delivery


class FakeDelivery:
    """The attributes and push_render behaviour of trame-vtk's vtkWebPublishImageDelivery."""

    def __init__(self, stale_rounds: int) -> None:
        self.delta_stale_time_before_render = 0.5
        self.stale_count_limit = 10
        self.stale_handler_count = {"1": 0}
        self.last_stale_time = {"1": 0}
        self.stale_rounds = stale_rounds
        self.scheduled: list = []
        self.published = 0

    def render_stale_image(self, v_id, stale_count=0):  # the stock one; replaced by tune()
        raise AssertionError("not replaced")

    def push_render(self, v_id, ignore_animation=False, stale_count=0):
        stale = self.stale_rounds > 0
        self.stale_rounds -= 1
        self.published += 1
        if stale:
            self.last_stale_time[v_id] = 1.0
            if self.stale_handler_count[v_id] == 0:
                self.stale_handler_count[v_id] += 1
                self.scheduled.append(lambda: self.render_stale_image(v_id, stale_count))
        else:
            self.last_stale_time[v_id] = 0


class FakeRoot:
    def __init__(self, links):
        self.links = links

    def getLinkProtocols(self):  # noqa: N802 - wslink's name
        return self.links


def test_tune_repolls_until_the_image_is_encoded():
    delivery = FakeDelivery(stale_rounds=5)
    assert image_delivery.tune(FakeRoot([delivery, object()])) == 1
    assert delivery.delta_stale_time_before_render == image_delivery.REPOLL_S
    delivery.push_render("1")
    while delivery.scheduled:
        delivery.scheduled.pop(0)()
    assert delivery.published == 6  # five stale answers (the push and four re-polls), then the fresh image
    assert delivery.last_stale_time["1"] == 0
    assert delivery.stale_handler_count["1"] == 0


def test_tune_without_protocol_is_harmless():
    assert image_delivery.tune(None) == 0
