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


# -- against trame-vtk's real class (the version pinned in pyproject.toml) --------------------------------------
class RealDeliveryHarness:
    """trame-vtk's own vtkWebPublishImageDelivery with its I/O replaced: still_render answers stale N times."""

    def __init__(self, monkeypatch, stale_rounds: int) -> None:
        from trame_vtk.modules.vtk.protocols import publish_image_delivery as mod

        self.scheduled: list = []
        monkeypatch.setattr(mod, "schedule_callback", lambda delay, fn: self.scheduled.append((delay, fn)))
        self.delivery = mod.vtkWebPublishImageDelivery(decode=False)
        self.delivery.tracking_views["1"] = {"enabled": True, "mtime": 0, "quality": 100, "ratio": 1,
                                             "originalSize": [10, 10]}
        self.delivery.stale_handler_count["1"] = 0
        self.published: list = []
        self.stale_rounds = stale_rounds

        def still_render(options):
            stale = self.stale_rounds > 0
            self.stale_rounds -= 1
            return {"stale": stale, "image": None if stale else b"jpeg", "mtime": 1}

        self.delivery.still_render = still_render
        self.delivery.addAttachment = lambda data: data
        self.delivery.publish = lambda topic, reply: self.published.append(reply)

    def run(self, now: list) -> None:
        self.delivery.push_render("1")
        while self.scheduled:
            delay, fn = self.scheduled.pop(0)
            now[0] += delay
            fn()


def test_the_patch_applies_to_trame_vtks_real_class_and_delivers_the_fresh_image(monkeypatch):
    import time as time_mod

    now = [1000.0]
    monkeypatch.setattr(time_mod, "time", lambda: now[0])
    h = RealDeliveryHarness(monkeypatch, stale_rounds=4)
    assert image_delivery.patchable(h.delivery)
    assert image_delivery.tune(FakeRoot([h.delivery])) == 1
    h.run(now)
    assert [r["image"] for r in h.published] == [b"jpeg"]
    assert h.delivery.last_stale_time["1"] == 0


def test_the_installed_trame_vtk_is_the_version_the_patch_was_checked_on():
    assert image_delivery.trame_vtk_version().startswith(image_delivery.TESTED_TRAME_VTK + ".")


def test_a_protocol_without_the_expected_internals_is_left_stock_and_logged(caplog):
    class Changed:
        delta_stale_time_before_render = 0.5

        def render_stale_image(self, view_id):  # a changed signature
            pass

    link = Changed()
    with caplog.at_level("ERROR", logger="webviewer.app.image_delivery"):
        assert image_delivery.tune(FakeRoot([link])) == 0
    assert link.delta_stale_time_before_render == 0.5
    assert any("NOT applied" in r.message for r in caplog.records)


# -- the quality switch the app makes while a pane is scrolled (trame-vtk's own RPC, on its real class) ---------
class QualityServer:
    """trame's server.protocol_call over trame-server's real RPC lookup and trame-vtk's real image delivery."""

    def __init__(self, delivery, state: dict) -> None:
        from trame_server.protocol import CoreServer

        class Protocol:
            rpcMethods: dict = {}

            def getLinkProtocols(self):  # noqa: N802 - wslink's name
                return [delivery]

            getRPCMethod = CoreServer.getRPCMethod  # noqa: N815

        self.protocol = Protocol()
        self.state = state

    def protocol_call(self, method, *args):
        obj, func = self.protocol.getRPCMethod(method)
        return func(obj, *args)


def real_delivery(monkeypatch):
    """trame-vtk's real image delivery tracking one 60x40 offscreen window as the axial pane's view "7"."""
    from trame_vtk.modules.vtk.protocols import publish_image_delivery as mod
    from vtkmodules.vtkRenderingCore import vtkRenderWindow

    delivery = mod.vtkWebPublishImageDelivery(decode=False)
    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(60, 40)
    monkeypatch.setattr(delivery, "get_view", lambda view_id: window if view_id == "7" else None)
    monkeypatch.setattr(delivery, "get_global_id", lambda view: 7)
    delivery.tracking_views["7"] = {"enabled": True, "mtime": 0, "quality": 90, "ratio": 1, "originalSize": [60, 40]}
    server = QualityServer(delivery, {image_delivery.VIEW_REF.format(pane="axial") + "Id": "7"})
    return delivery, window, server


def test_set_view_quality_reaches_trame_vtks_real_delivery(monkeypatch):
    delivery, window, server = real_delivery(monkeypatch)
    assert image_delivery.set_view_quality(server, "axial", image_delivery.INTERACTIVE_QUALITY)
    assert delivery.tracking_views["7"]["quality"] == image_delivery.INTERACTIVE_QUALITY
    assert delivery.tracking_views["7"]["ratio"] == 1.0 and tuple(window.GetSize()) == (60, 40)
    assert image_delivery.set_view_quality(server, "axial", image_delivery.STILL_QUALITY)
    assert delivery.tracking_views["7"]["quality"] == image_delivery.STILL_QUALITY


def test_a_loads_progressive_frames_are_smaller_on_trame_vtks_real_delivery(monkeypatch):
    """While a load fills the panes their still frames are half size at quality 70; scrolling a pane meanwhile
    is full size at the interactive quality, and its still frame after that small again; the end of the load
    restores full size and quality (trame-vtk resizes the render window itself)."""
    from webviewer.app.views import ViewLogic

    delivery, window, server = real_delivery(monkeypatch)

    class View:
        pass

    view = View()
    view.server = server
    logic = ViewLogic(state={}, renderer=object())
    logic.views = {"axial": view}
    tracked = delivery.tracking_views["7"]

    logic.set_progressive_frames(True)
    assert (tracked["quality"], tracked["ratio"]) == (image_delivery.PROGRESSIVE_QUALITY, image_delivery.PROGRESSIVE_RATIO)
    assert tuple(window.GetSize()) == (30, 20)
    logic._set_quality("axial", interactive=True)  # a scroll step during the load
    assert (tracked["quality"], tracked["ratio"]) == (image_delivery.INTERACTIVE_QUALITY, 1.0)
    assert tuple(window.GetSize()) == (60, 40)
    logic._set_quality("axial", interactive=False)  # the scrolling stopped, the load still runs
    assert tracked["ratio"] == image_delivery.PROGRESSIVE_RATIO and tuple(window.GetSize()) == (30, 20)
    logic.set_progressive_frames(False)
    assert (tracked["quality"], tracked["ratio"]) == (image_delivery.STILL_QUALITY, 1.0)
    assert tuple(window.GetSize()) == (60, 40)


def test_set_view_quality_before_a_browser_subscribed_changes_nothing(monkeypatch):
    from trame_vtk.modules.vtk.protocols import publish_image_delivery as mod

    delivery = mod.vtkWebPublishImageDelivery(decode=False)
    monkeypatch.setattr(delivery, "get_view", lambda view_id: object())
    monkeypatch.setattr(delivery, "get_global_id", lambda view: 7)
    server = QualityServer(delivery, {image_delivery.VIEW_REF.format(pane="axial") + "Id": "7"})
    assert image_delivery.set_view_quality(server, "axial", 50) is False
    assert image_delivery.set_view_quality(None, "axial", 50) is False


def test_a_trame_vtk_without_the_quality_rpc_is_logged_as_an_error(caplog):
    class NoRpc:
        protocol = object()
        state = {image_delivery.VIEW_REF.format(pane="axial") + "Id": "7"}

        def protocol_call(self, method, *args):
            return None  # trame's answer for an RPC name nobody registered

    with caplog.at_level("ERROR", logger="webviewer.app.image_delivery"):
        assert image_delivery.set_view_quality(NoRpc(), "axial", 50) is False
    assert "no viewport.image.push.quality RPC" in caplog.text


def test_animating_reads_trame_vtks_real_delivery():
    from trame_vtk.modules.vtk.protocols import publish_image_delivery as mod

    delivery = mod.vtkWebPublishImageDelivery(decode=False)
    server = QualityServer(delivery, {})
    assert image_delivery.animating(server) is False
    delivery.views_in_animations.append("7")  # what its start_view_animation does on a mouse down
    assert image_delivery.animating(server) is True
    assert image_delivery.animating(None) is False
