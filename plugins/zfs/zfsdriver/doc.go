// Package zfsdriver is the zfs graph driver, driven through the zfs command. Every layer is the
// dataset <fsname>/<layerID>; a child layer is a clone of a snapshot <parent>@<nanoseconds>
// taken at its Create, so a layer's origin snapshot belongs to it alone and Remove destroys it
// with the clone.
//
// fsname comes from zfs.fsname, or is the dataset mounted where the graph root is. Datasets are
// created with mountpoint=legacy and canmount=noauto; Get mounts a layer at
// Home/graph/<layerID> (Home is <graphroot>/zfs) and Put unmounts it. Two ZFS implementations
// are served, detected at Init: the OpenZFS kernel module (/sys/module/zfs; mounts with
// mount -t zfs) and zfs-fuse (its daemon mounts: Get sets the dataset's mountpoint property to
// the mount point once, then runs zfs mount -o ...). Diffs use the naive differ
// (pluginapi/naive), which mounts a layer that is not mounted for the duration of the call.
//
// State: everything is in ZFS and the mount table, except which mounts are in use by a diff in
// progress (memory, guarded by one mutex that serialises mounting). A restarted plugin needs
// only Init.
//
// Options ("zfs.", "." or no prefix): fsname, mountopt (comma-separated, added to every mount).
// Any other key is ErrInvalidArgument naming it. The "size" storage option sets the dataset's
// quota property; writes past it fail with EDQUOT.
package zfsdriver
