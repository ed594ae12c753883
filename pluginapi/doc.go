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
// plugin one end of a Unix socket pair (exec.Cmd.ExtraFiles); for each stream the host passes,
// over it with SCM_RIGHTS and tagged with a stream ID that the gRPC call names, the plugin's end
// of a shared-memory stream: an arena (memfd) both map, and a control socket carrying the frames
// that name filled slots, the slots given back, and last a trailer with the byte count and
// CRC-32C of the payload, so a stream cut by a dying peer is an ErrCorrupt error, never a shorter
// valid tar. The bytes are copied once into the arena and once out of it, never through the
// kernel (a pipe cost two kernel copies and a page allocation per 4 KiB).
//
// # Pieces
//
//   - driver.go: the contract. proto/: its wire form (driver.proto, generated code, gen.sh).
//   - handshake.go: Handshake (go-plugin's handshake, ProtocolVersion = APIVersion) and the
//     one-entry plugin map shared by both sides.
//   - errors.go: the class <-> status mapping, the DriverError marker that tells a driver's
//     ErrUnavailable from a dead transport, ErrPluginDied.
//   - fdpass.go, stream.go, shmstream.go: the stream socket and descriptor passing, framing, the
//     shared-memory streams.
//   - profile.go: CSTORAGE_PLUGIN_CPUPROFILE, a CPU profile of the plugin process.
//   - serve.go, server.go: the plugin side. Serve(d) is all a driver's main calls.
//   - client.go, remote.go, find.go: the host side. NewClient(cfg) finds the executable;
//     the Client launches it on first use, relaunches it after a death, replays Init.
//   - harness.go: NewInProcess(d) runs d behind the same gRPC server, client, fd passing and
//     framing in this process, for fast tests of drivers and of the store.
//
// # Rules for plugin authors
//
// Log only through hclog.Default() (Serve installs a JSON logger on the process's stderr, which the
// host re-emits under its logger named after the driver); never write to stdout. A panic in a
// call fails that call and the plugin keeps serving. The plugin exits when the host closes the
// Client or dies; the host also sets a parent-death signal (SIGKILL) as a backup. Every call's
// context is cancelled when the host gives up on the call.
package pluginapi
