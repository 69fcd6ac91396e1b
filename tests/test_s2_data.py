"""examples/make_s2_data.py: the Sentinel-2-L2A-like STAC catalog, made at 128 pixels and read with pystac."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pystac
import pystac.validation
import pytest
import rasterio
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "make_s2_data.py"
SIZE = 128


def load_script():
    spec = importlib.util.spec_from_file_location("make_s2_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def s2():
    return load_script()


@pytest.fixture(scope="module")
def catalog_path(s2, tmp_path_factory):
    return s2.make(tmp_path_factory.mktemp("s2") / "catalog", size=SIZE)


@pytest.fixture(scope="module")
def items(catalog_path):
    catalog = pystac.Catalog.from_file(str(catalog_path))
    return sorted(catalog.get_items(recursive=True), key=lambda item: item.id)


def test_catalog_is_self_contained_and_walks(catalog_path, s2):
    catalog = pystac.Catalog.from_file(str(catalog_path))
    on_disk = json.loads(catalog_path.read_text())
    assert pystac.CatalogType.determine_type(on_disk) == pystac.CatalogType.SELF_CONTAINED
    walked = [item for _, _, found in catalog.walk() for item in found]
    assert len(walked) == 2 * len(s2.DATES) and len(s2.DATES) >= 8
    # The core STAC schemas, which pystac has locally (the extensions' would be downloaded).
    for stac_object in (catalog, *walked):
        pystac.validation.validate_dict(stac_object.to_dict(include_self_link=False), extensions=[])
    # Every link and asset href is relative: nothing in the JSON names the folder it was made in.
    folder = catalog_path.parent
    for path in folder.rglob("*.json"):
        assert str(folder) not in path.read_text(), path
    for item in walked:
        for asset in item.assets.values():
            assert Path(asset.get_absolute_href()).is_file()
    assert catalog.extra_fields[s2.GENERATOR_KEY]["size"] == SIZE


def test_two_zones_one_pass_per_date(items):
    by_tile = {}
    for item in items:
        epsg = ProjectionExtension.ext(item).epsg
        by_tile.setdefault((item.properties["s2:mgrs_tile"], epsg), []).append(item)
    assert {epsg for _, epsg in by_tile} == {32632, 32633}
    (west, west_items), (east, east_items) = sorted(by_tile.items())
    assert west[0].startswith("32") and east[0].startswith("33")
    assert [i.datetime.date() for i in west_items] == [i.datetime.date() for i in east_items]
    for a, b in zip(west_items, east_items, strict=True):
        assert abs(a.datetime - b.datetime) < timedelta(seconds=10)
        assert a.properties["platform"] == b.properties["platform"]
        assert a.properties["sat:relative_orbit"] == b.properties["sat:relative_orbit"]
        assert a.properties["s2:product_type"] == "S2MSI2A"
    assert {i.properties["platform"] for i in items} == {"sentinel-2a", "sentinel-2b"}
    # Overlapping footprints, either side of 12 E.
    assert west_items[0].bbox[0] < 12 < west_items[0].bbox[2] and east_items[0].bbox[0] < 12 < east_items[0].bbox[2]


def test_cloud_cover_is_the_scl_cloud_fraction_and_clouds_are_bright(items):
    covers = []
    for item in items:
        with rasterio.open(item.assets["SCL"].get_absolute_href()) as src:
            scl = src.read(1)
        cloud = np.isin(scl, (8, 9, 10))
        cover = EOExtension.ext(item).cloud_cover
        assert cover == pytest.approx(100 * cloud.mean(), abs=0.5), item.id
        covers.append(cover)
        clear = np.isin(scl, (4, 5, 6))
        if cloud.sum() > 20:
            with rasterio.open(item.assets["B04"].get_absolute_href()) as src:
                red = src.read(1).astype(float)
            red = red.reshape(scl.shape[0], 2, scl.shape[1], 2).mean(axis=(1, 3))  # to 20 m
            # Bright clouds; the clear pixels of the cloudiest passes are mostly sunlit rock, not dark.
            assert red[cloud].mean() > max(2500, 1.5 * red[clear].mean()), item.id
    assert min(covers) < 5 and max(covers) > 60 and any(20 <= c <= 40 for c in covers)


def test_assets_open_at_10_and_20_m(items):
    for item in items[:2]:
        epsg = ProjectionExtension.ext(item).epsg
        for key, asset in item.assets.items():
            resolution = 20 if key == "SCL" else 10
            assert asset.roles == ["data"] and asset.extra_fields["gsd"] == resolution
            with rasterio.open(asset.get_absolute_href()) as src:
                assert src.res == (resolution, resolution)
                assert src.crs.to_epsg() == epsg
                assert list(src.shape) == asset.extra_fields["proj:shape"] == [SIZE * 10 // resolution] * 2
                assert list(src.transform)[:6] == asset.extra_fields["proj:transform"]
                assert src.dtypes[0] == ("uint8" if key == "SCL" else "uint16")
                assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and src.overviews(1)


def test_same_inputs_same_bytes_and_a_rerun_keeps_the_files(s2, catalog_path, tmp_path):
    again = tmp_path / "again"
    assert s2.main(["--out", str(again), "--size", str(SIZE)]) == 0
    first, second = catalog_path.parent, again
    names = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    stamp = {p: p.stat().st_mtime_ns for p in second.rglob("*") if p.is_file()}
    s2.make(again, size=SIZE)
    assert stamp == {p: p.stat().st_mtime_ns for p in second.rglob("*") if p.is_file()}


def test_size_comes_from_the_demo_variable_at_most_2048(s2, monkeypatch):
    monkeypatch.setenv("CONDORMAGIC_DEMO_SIZE", "240")
    assert s2.default_size() == 240
    monkeypatch.setenv("CONDORMAGIC_DEMO_SIZE", "4096")
    assert s2.default_size() == 2048
    monkeypatch.delenv("CONDORMAGIC_DEMO_SIZE")
    assert s2.default_size() == 2048
