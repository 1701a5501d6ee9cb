"""The Smokescreen stand-in, as installed in the twin's CVAT image, answers every recorded
case of selftests/data/contracts/smokescreen/cases.json over real sockets inside cvat_server."""

import pytest

from selftests.smokescreen_replay import replay_in_container


@pytest.mark.twin
def test_smokescreen_in_cvat_server_replays_every_recorded_case():
    mismatches = replay_in_container("cvat_server")
    assert not mismatches, "\n".join(mismatches)
