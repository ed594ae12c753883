// Package driverkit holds the pieces graph drivers (plugins/*) would otherwise each write again.
// It is for plugin authors; the store never imports it.
//
//   - options.go: ParseOptions splits InitOptions.Options into Options (prefix removed, errors
//     naming the key); ParseSize, SplitList; StorageSize validates a "size"-only StorageOpt.
//   - differ.go: ForwardDiffer, the Differ methods of a driver whose differ Init makes;
//     PlainDirs, the naive differ's view of layers that are plain directories.
//   - layers.go: IsDirName (is a layer ID one safe directory name), ListDirs.
//   - fs.go: FSName, BackingFS (Status's "Backing Filesystem"), MakePrivateBind (Init's
//     private bind mount of the home).
//   - info.go: Info, a driver's pluginapi.Info for this build's contract version.
//
// Nothing here keeps state: every function works on its arguments, so a driver stays free to
// keep its own state (set once by Init, per the pluginapi.ProtoDriver contract) as it likes.
//
// Errors wrap the errdefs classes and name what they are about (the option key as the user
// wrote it, the storage option, the directory), but not the operation or the layer ID: the
// driver wraps them with those, as it does its own errors. ForwardDiffer's errors are the
// exception: they stand for the driver's own Differ methods, so they name both.
//
// Vocabulary, as in pluginapi: a driver option is one "key=value" string of
// InitOptions.Options, whose key may carry a prefix ("vfs.", "overlay2.", "."); its name is the
// key lower-cased without the prefix. A storage option is a CreateOpts.StorageOpt entry.
//
// Test helpers for driver packages are in the sub-package drivertest.
package driverkit
