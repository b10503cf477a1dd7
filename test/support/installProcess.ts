/**
 * installCatalogueModel in a process of its own, as a second VS Code window would run it (for the test of two
 * installs at once). argv[2]: JSON { entry, options } (options without callbacks). Prints JSON { dir, stages }.
 */
import type { CatalogueEntry } from '../../src/install/catalogue';
import { installCatalogueModel, type InstallOptions, type InstallProgress } from '../../src/install/install';

const { entry, options } = JSON.parse(process.argv[2] ?? '{}') as { entry: CatalogueEntry; options: InstallOptions };
const stages = new Set<InstallProgress['stage']>();
installCatalogueModel(entry, { ...options, onProgress: (p) => stages.add(p.stage) }).then(
  (dir) => process.stdout.write(JSON.stringify({ dir, stages: [...stages] })),
  (error: unknown) => {
    process.stderr.write(error instanceof Error ? error.stack ?? error.message : String(error));
    process.exitCode = 1;
  },
);
