/** The models the extension can download (models/*.json, bundled into the extension). */
import phi15Fp16 from '../../models/phi-1_5-fp16.json';
import phi15Int4 from '../../models/phi-1_5-int4.json';
import phi15Int4Gpu from '../../models/phi-1_5-int4-gpu.json';
import type { KvCacheFormat, KvOutputs, WeightFormat } from '../model/manifest';
import type { DownloadFile } from './download';
import { KNOWN_CONTENT } from './knownContent';

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

/** A models/*.json file: a file's `content` names one of KNOWN_CONTENT's checks. */
type CatalogueJson = Omit<CatalogueEntry, 'source'> & {
  readonly source: Omit<CatalogueEntry['source'], 'files'> & { readonly files: readonly (Omit<DownloadFile, 'content'> & { readonly content?: string })[] };
};

function fromJson(json: CatalogueJson): CatalogueEntry {
  const files = json.source.files.map(({ content, ...file }) => {
    if (content === undefined) return file;
    const check = KNOWN_CONTENT[content];
    if (!check) throw new Error(`models/${json.id}.json: ${file.name} names an unknown content check "${content}"`);
    return { ...file, content: check };
  });
  return { ...json, source: { ...json.source, files } };
}

export const CATALOGUE: readonly CatalogueEntry[] = [phi15Int4, phi15Int4Gpu, phi15Fp16].map((json) => fromJson(json as CatalogueJson));

export function catalogueEntry(id: string): CatalogueEntry | undefined {
  return CATALOGUE.find((entry) => entry.id === id);
}
