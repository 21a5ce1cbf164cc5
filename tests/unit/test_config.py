"""Configs survive the JSON round trip that prepare's worker processes rely on."""

from datetime import timedelta

import pytest

from harpnet_cli.config import DownscaleConfig, PrepareConfig


@pytest.mark.parametrize("text", ["6h", "360min", "0.25d"])
def test_prepare_config_with_an_accumulation_survives_json(tmp_path, text):
    cfg = PrepareConfig.model_validate({"sources": ["a.nc"], "output": tmp_path / "s.zarr", "accumulation": text,
                                        "periods": "6"})
    assert cfg.accumulation == timedelta(hours=6)
    again = PrepareConfig.model_validate_json(cfg.model_dump_json())
    assert again == cfg


def test_accumulation_text_that_is_no_duration_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot read the duration"):
        DownscaleConfig.model_validate({"inputs": ["a.nc"], "output": tmp_path / "o.nc", "accumulation": "soon"})
