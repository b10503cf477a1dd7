/** The models the extension can download (models/*.json, bundled into the extension). */
import phi15Fp16 from '../../models/phi-1_5-fp16.json';
import phi15Int4 from '../../models/phi-1_5-int4.json';
import type { DownloadFile } from '../model/download';
import type { WeightFormat } from '../model/manifest';

export interface CatalogueEntry {
  readonly id: string;
  readonly title: string;
  readonly source: { readonly repo: string; readonly revision: string; readonly files: readonly DownloadFile[] };
  readonly build: { readonly format: WeightFormat };
  /** Approximate sizes, for the first-run prompt and the disk-space check. */
  readonly downloadBytes: number;
  readonly modelBytes: number;
}

export const CATALOGUE: readonly CatalogueEntry[] = [phi15Int4 as CatalogueEntry, phi15Fp16 as CatalogueEntry];

export function catalogueEntry(id: string): CatalogueEntry | undefined {
  return CATALOGUE.find((entry) => entry.id === id);
}
