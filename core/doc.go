// Package core is the store: the layer graph, the images and containers attached to it, and
// their metadata, kept in the on-disk format of the established containers/storage so that a
// graph root written by either tool is usable by the other. The contents of layers belong to a
// graph driver, which runs as a plugin process (pluginapi); this package never imports a driver.
//
// Vocabulary.
//   - A layer is a directory tree kept by the driver under an ID (64 lowercase hex when
//     generated; any string when the caller gives one). It has at most one parent, whose
//     contents it starts with. Names are extra unique handles; a reference ("ref") is an ID, a
//     name, or a unique ID prefix, resolved in that order.
//   - A layer made from a tar records its diff ID (the digest of the uncompressed tar,
//     UncompressedDigest) and size, the digest and size of the stream as given
//     (CompressedDigest, CompressedSize), its compression, and the UIDs and GIDs the tar
//     used. Its tar-split file (<id>.tar-split.gz) keeps the tar's headers and padding, so the
//     byte-identical tar can be rebuilt from the layer's files.
//   - An incomplete layer (flags.incomplete) is one being created or deleted. A read-write
//     Store that finds one left by a killed process (or by an operation Close aborted) deletes
//     it; one the driver cannot remove is logged and kept, flagged, until the next read-write
//     Open tries again (Check reports it meanwhile).
//   - The mount count of a layer is the number of Mount calls not yet matched by Unmount,
//     across every process, kept in <runroot>/<driver>-layers/mountpoints.json.
//   - An image names a top layer (or none) and carries big-data items; its Digests are its
//     explicit digest plus the digest of every item whose key starts with "manifest".
//   - A container owns a read-write layer whose parent is its image's top layer.
//
// Invariants.
//   - Lookups, listings, names, metadata, big data and Version never start the driver plugin;
//     each resolves a ref with map lookups or one binary search, whatever the store's size.
//   - Every JSON file is replaced atomically (temporary file, fsync, rename, directory fsync;
//     the volatile files skip the fsyncs), and each write is followed by a new token in the
//     kind's lock file, so other processes reload it. A file that fails to decode is an
//     ErrCorrupt error naming it and the offset, and is never overwritten.
//   - A layer record is saved, flagged incomplete, before the driver is asked to create the
//     layer, and the flag is cleared only after the contents and tar-split are synced; delete
//     sets the flag before the driver removes anything. Hence, after a crash at any point,
//     every driver layer created by this package has a record, and every record either is
//     complete or is removed (driver layer included) by the next read-write open that the
//     driver lets remove it. A delete the driver refuses (ErrInUse, ErrNotSupported,
//     ErrInvalidArgument: nothing removed) leaves the record complete, as before. There is no
//     staging name to sweep: the only driver layers without a record are those made on purpose
//     with CreateStorageLayer (or by other tools), which Check reports and Repair removes.
//   - Errors wrap an errdefs class, through the sentinels of errors.go, with the operation and
//     the ID or ref.
//
// Additional read-only image stores ("<driver>.imagestore=DIR" driver options) are searched
// after this store's own records; their items are ReadOnly, and only image names may change
// (the image is then copied, "pulled up", into this store).
//
// With a split store (Options.ImageStore = DIR), new images and read-only layers are recorded
// under DIR (DIR/<driver>-images, DIR/<driver>-layers, each with its own lock file), while the
// graph root stays a read-write store for everything else and is searched too. The driver gets
// "<driver>.imagestore=DIR" to find layer contents the established tool keeps there.
//
// A transient store (Options.TransientStore) keeps the container lock and
// volatile-containers.json in the run root, makes every container volatile, and keeps
// container layers in <runroot>/<driver>-layers/volatile-layers.json.
//
// Not supported yet (errors wrapping errdefs.ErrNotSupported): ID-mapped layers and containers
// (ErrIDMapsNotSupported: the driver contract carries no ID mappings), additional layer stores,
// and dedup (ErrDedupNotSupported).
package core
