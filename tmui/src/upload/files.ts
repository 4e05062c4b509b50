// Files from a drop (files and whole folders, read recursively) or from a file input.
// Only File handles are collected: no byte is read here.

import type { SourceFile } from "./queue";

/** The files of an `<input type=file>` (with `webkitdirectory`: the folder's, recursively). */
export function filesFromInput(input: HTMLInputElement): SourceFile[] {
  return Array.from(input.files ?? [], (file) => ({
    name: file.name,
    path: file.webkitRelativePath || file.name,
    file,
  }));
}

/** All entries of a directory: readEntries answers a batch at a time, until an empty one. */
async function readDirectory(directory: FileSystemDirectoryEntry): Promise<FileSystemEntry[]> {
  const reader = directory.createReader();
  const entries: FileSystemEntry[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) =>
      reader.readEntries(resolve, reject),
    );
    if (batch.length === 0) return entries;
    entries.push(...batch);
  }
}

function fileOf(entry: FileSystemFileEntry): Promise<File> {
  return new Promise<File>((resolve, reject) => entry.file(resolve, reject));
}

async function walk(entry: FileSystemEntry, into: SourceFile[], unreadable: string[]): Promise<void> {
  const path = entry.fullPath.replace(/^\//, "");
  try {
    if (entry.isFile) {
      const file = await fileOf(entry as FileSystemFileEntry);
      into.push({ name: file.name, path, file });
    } else if (entry.isDirectory) {
      for (const child of await readDirectory(entry as FileSystemDirectoryEntry)) {
        await walk(child, into, unreadable);
      }
    }
  } catch {
    unreadable.push(path);
  }
}

/**
 * The files of a drop, folders included. The entries must be taken while the drop event is
 * handled (the DataTransfer is emptied afterwards): call this synchronously from the handler.
 */
export function filesFromDrop(transfer: DataTransfer): Promise<{ files: SourceFile[]; unreadable: string[] }> {
  const entries: FileSystemEntry[] = [];
  const plain: File[] = [];
  for (const item of Array.from(transfer.items ?? [])) {
    if (item.kind !== "file") continue;
    const entry = item.webkitGetAsEntry?.();
    if (entry) entries.push(entry);
    else {
      const file = item.getAsFile();
      if (file) plain.push(file);
    }
  }
  if (entries.length === 0 && plain.length === 0) plain.push(...Array.from(transfer.files ?? []));
  return (async () => {
    const files: SourceFile[] = plain.map((file) => ({ name: file.name, path: file.name, file }));
    const unreadable: string[] = [];
    for (const entry of entries) await walk(entry, files, unreadable);
    return { files, unreadable };
  })();
}
