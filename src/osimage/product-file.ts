import { readFile } from 'node:fs/promises';
import { fsError, OciError } from '../errors.js';
import { decodeUtf8AsGo } from '../oci/json.js';
import { type ProductInfo, parseProductInfo } from './format.js';

/** Reads a `--product-info` JSON file: an object with product_info fields; unknown keys are rejected. */
export async function readProductInfoFile(path: string): Promise<Partial<ProductInfo>> {
  let text: string;
  try {
    // Decoded as Monogon's builder (Go) decodes it, so invalid bytes give the same config bytes.
    text = decodeUtf8AsGo(await readFile(path));
  } catch (err) {
    throw fsError(err, path, 'read');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new OciError('INVALID_PRODUCT_INFO', `${path} is not valid JSON: ${(err as Error).message}`);
  }
  return parseProductInfo(json, path);
}
