"""Independent references that tests compare condormagic's reads with (none of its code)."""

from __future__ import annotations

from html import escape

import numpy as np
import rasterio
from affine import Affine

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
