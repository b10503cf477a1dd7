/** The models the extension can download (models/*.json, bundled into the extension). */
import phi15Fp16 from '../../models/phi-1_5-fp16.json';
import phi15Int4 from '../../models/phi-1_5-int4.json';
import phi15Int4Gpu from '../../models/phi-1_5-int4-gpu.json';
import type { KvCacheFormat, KvOutputs, WeightFormat } from '../model/manifest';
import type { DownloadFile } from './download';

/** How a model's downloaded weights are converted (the builder's options a catalogue entry may set). */
export interface ModelBuild {
  readonly format: WeightFormat;
  /** Default: the builder's (int8 for int4, float otherwise). */
  readonly kvCache?: KvCacheFormat;
  /** Default present_rows (the CPU's); `present_settled` (or `present`) keeps the cache on a GPU (WebGPU) and needs a float cache. */
  readonly kvOutputs?: KvOutputs;
}

export interface CatalogueEntry {
  readonly id: string;
  readonly title: string;
  readonly source: { readonly repo: string; readonly revision: string; readonly files: readonly DownloadFile[] };
  readonly build: ModelBuild;
  /** Approximate sizes, for the first-run prompt and the disk-space check. */
  readonly downloadBytes: number;
  readonly modelBytes: number;
}

export const CATALOGUE: readonly CatalogueEntry[] = [phi15Int4 as CatalogueEntry, phi15Int4Gpu as CatalogueEntry, phi15Fp16 as CatalogueEntry];

export function catalogueEntry(id: string): CatalogueEntry | undefined {
  return CATALOGUE.find((entry) => entry.id === id);
}
