// Package pluginapi is the contract between the store (core) and a graph driver, and its plumbing.
//
// The contract is the Driver interface (driver.go). A driver is an executable named
// containers-storage-driver-<name> whose main calls Serve(driver). The store starts it lazily
// through a Client (the host side), which implements Driver by calling the plugin over gRPC
// (hashicorp/go-plugin), and which restarts the plugin if it dies.
//
// Errors cross the boundary as the errdefs classes: a class maps to a gRPC status code and back, so
// errors.Is(err, errdefs.ErrNotFound) holds on the host exactly as in the plugin. A plugin that died
// is reported as ErrPluginDied (class ErrUnavailable) naming the driver, never as a missing layer.
//
// Tar streams (Diff, ApplyDiff) do not go through gRPC messages. At launch the host hands the
// plugin one end of a Unix socket pair (exec.Cmd.ExtraFiles); for each stream the host passes a
// pipe end over it with SCM_RIGHTS, tagged with a stream ID that the gRPC call names. The bytes on
// the pipe are framed, and the last frame is a trailer with the byte count and SHA-256 of the
// payload, so a stream cut by a dying peer is an ErrCorrupt error, never a shorter valid tar.
package pluginapi
