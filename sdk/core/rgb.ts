/** 8-bit interleaved RGB pixels: the currency of image I/O and image figures. */
export interface RgbImage {
  data: Uint8Array; // [H, W, 3]
  width: number;
  height: number;
}
