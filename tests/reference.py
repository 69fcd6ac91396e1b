"""Independent references that tests compare condormagic's reads with (none of its code)."""

from __future__ import annotations

import math
from html import escape

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform

ALGORITHMS = {"nearest": "NearestNeighbour", "bilinear": "Bilinear", "cubic": "Cubic", "average": "Average"}


def hand_warped(
    path,
    dst_crs: str,
    dst_transform: Affine,
    width: int,
    height: int,
    resampling: str,
    scale: tuple[float, float],
    data_type: str = "Float32",
    level: int | None = None,
) -> np.ndarray:
    """Band 1 of ``path`` (its overview ``level``) warped onto a whole grid at once, by a warped VRT
    written out here: GDAL's exact transformer (no approximation), and one resampling scale
    (GDAL's XSCALE/YSCALE, grid pixels per pixel of what is read) for the whole grid."""
    with rasterio.open(path, overview_level=level) if level is not None else rasterio.open(path) as s:
        src_gt, nodata, src_crs = s.transform, s.nodata, s.crs

    def gt(a: Affine) -> str:
        return ",".join(repr(v) for v in a.to_gdal())

    opened = f'<OpenOptions><OOI key="OVERVIEW_LEVEL">{level}</OOI></OpenOptions>' if level is not None else ""
    xml = f"""<VRTDataset rasterXSize="{width}" rasterYSize="{height}" subClass="VRTWarpedDataset">
  <SRS>{escape(dst_crs)}</SRS>
  <GeoTransform>{gt(dst_transform)}</GeoTransform>
  <VRTRasterBand dataType="{data_type}" band="1" subClass="VRTWarpedRasterBand">
    <NoDataValue>{nodata}</NoDataValue>
  </VRTRasterBand>
  <GDALWarpOptions>
    <ResampleAlg>{ALGORITHMS[resampling]}</ResampleAlg>
    <WorkingDataType>{data_type}</WorkingDataType>
    <Option name="INIT_DEST">NO_DATA</Option>
    <Option name="XSCALE">{scale[0]!r}</Option>
    <Option name="YSCALE">{scale[1]!r}</Option>
    <SourceDataset relativeToVRT="0">{escape(str(path))}</SourceDataset>
    {opened}
    <Transformer>
      <GenImgProjTransformer>
        <SrcGeoTransform>{gt(src_gt)}</SrcGeoTransform>
        <SrcInvGeoTransform>{gt(~src_gt)}</SrcInvGeoTransform>
        <DstGeoTransform>{gt(dst_transform)}</DstGeoTransform>
        <DstInvGeoTransform>{gt(~dst_transform)}</DstInvGeoTransform>
        <ReprojectTransformer>
          <ReprojectionTransformer>
            <SourceSRS>{escape(src_crs.to_wkt())}</SourceSRS>
            <TargetSRS>{escape(dst_crs)}</TargetSRS>
          </ReprojectionTransformer>
        </ReprojectTransformer>
      </GenImgProjTransformer>
    </Transformer>
    <BandList>
      <BandMapping src="1" dst="1">
        <SrcNoDataReal>{nodata}</SrcNoDataReal>
        <DstNoDataReal>{nodata}</DstNoDataReal>
      </BandMapping>
    </BandList>
  </GDALWarpOptions>
</VRTDataset>"""
    with rasterio.open(xml) as vrt:
        return vrt.read(1)


def screen_pixel_in(crs, view) -> float:
    """The side of a screen pixel of ``view`` (an explorer ``View``, EPSG:3857) at its centre, in ``crs``."""
    cx = (view.bounds[0] + view.bounds[2]) / 2
    cy = (view.bounds[1] + view.bounds[3]) / 2
    px, py = transform("EPSG:3857", crs, [cx, cx + view.resolution, cx], [cy, cy, cy + view.resolution])
    return min(math.dist((px[0], py[0]), (px[1], py[1])), math.dist((px[0], py[0]), (px[2], py[2])))


def view_warped(path, view) -> np.ndarray:
    """Band 1 of ``path`` on ``view`` (float32, NaN where no data), by ``rasterio.warp.reproject`` from
    the coarsest overview whose pixels are no larger than the screen's."""
    with rasterio.open(path) as ds:
        screen = screen_pixel_in(ds.crs, view)
        factors = [f for f in ds.overviews(1) if ds.res[0] * f <= screen]
        level = len(factors) - 1 if factors else None
        nodata = ds.nodata
    out = np.full((view.height, view.width), np.nan, np.float32)
    with rasterio.open(path) if level is None else rasterio.open(path, overview_level=level) as ds:
        reproject(
            rasterio.band(ds, 1),
            out,
            src_nodata=nodata,
            dst_transform=view.transform,
            dst_crs="EPSG:3857",
            dst_nodata=np.nan,
            resampling=Resampling.nearest,
        )
    return out
