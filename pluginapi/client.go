package pluginapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi/proto"
)

// ClientConfig says which plugin a Client runs.
type ClientConfig struct {
	Driver     string   // driver name, e.g. "vfs"
	Path       string   // explicit executable path; "" = search (FindExecutable)
	PluginDirs []string // searched in order for containers-storage-driver-<Driver>, then the directory of os.Executable
	// Logger receives the Client's own messages and, under Logger.Named(Driver), every log line of
	// the plugin. nil = hclog at Error level to stderr.
	Logger hclog.Logger
}

// Client is the host side of a driver plugin: a Driver whose calls run in a plugin process.
//
// Lifecycle: NewClient finds the executable but starts nothing. The first call that needs the
// plugin (Info and Init included) launches it: handshake, then an Info whose name must be
// cfg.Driver and whose APIVersions must contain APIVersion. Close stops the process and waits for
// it; after Close every call fails with ErrUnavailable.
//
// Death: a call that finds the plugin dead returns an error wrapping ErrPluginDied that names the
// driver, the operation and the exit status. The next call relaunches the plugin and first
// replays the options of the latest successful Init. Calls that are safe to repeat (Info, Exists, ListLayers,
// Status, Metadata, Get, Put, Remove, Changes, DiffSize) are retried once on a relaunched plugin
// instead of failing; Create, ApplyDiff, Diff, Init and Cleanup are not.
//
// Concurrency: a Client is safe for concurrent use. Launches are serialized by one mutex, which is
// never held during a driver call. Every call honours its context: cancelling it cancels the gRPC
// call, the driver sees ctx.Done(), and the call returns ctx.Err() wrapped.
type Client struct {
	cfg  ClientConfig
	path string
	log  hclog.Logger

	started atomic.Bool

	mu       sync.Mutex // serializes launches and Close; guards the fields below
	proc     *process   // the running plugin, nil before the first launch and after Close
	closed   bool
	initOpts *InitOptions // the latest successful Init's options, replayed on every relaunch
}

var _ Driver = (*Client)(nil)

// NewClient finds the plugin executable of cfg.Driver (see FindExecutable). It does not start it.
func NewClient(cfg ClientConfig) (*Client, error) {
	path, err := FindExecutable(cfg.Driver, cfg.Path, cfg.PluginDirs)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr})
	}
	return &Client{cfg: cfg, path: path, log: log}, nil
}

// Path is the plugin executable the Client runs.
func (c *Client) Path() string { return c.path }

// Started reports whether a plugin process has ever been launched by this Client.
func (c *Client) Started() bool { return c.started.Load() }

// Pid returns the pid of the running plugin process, or 0.
func (c *Client) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil || c.proc.dead.Load() || c.proc.pc.Exited() || c.proc.cmd.Process == nil {
		return 0
	}
	return c.proc.cmd.Process.Pid
}

// Close stops the plugin process (gracefully, then by SIGKILL) and waits for it to exit. It is
// idempotent. Calls still running fail.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.proc != nil {
		c.proc.stop()
		c.proc = nil
	}
	return nil
}

// process is one launch of the plugin.
type process struct {
	pc   *plugin.Client
	cmd  *exec.Cmd
	fds  *fdSender
	drv  *grpcDriver
	dead atomic.Bool // a call saw the connection broken; the next call relaunches
}

// stop kills the process (go-plugin's graceful shutdown first) and waits for it; closing the
// stream socket would make the plugin exit too.
func (p *process) stop() {
	p.dead.Store(true)
	p.pc.Kill()
	p.fds.Close()
}

// exitStatus waits briefly for the process to be reaped and describes how it ended.
func (p *process) exitStatus() string {
	for deadline := time.Now().Add(2 * time.Second); !p.pc.Exited(); {
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(10 * time.Millisecond)
	}
	// go-plugin sets Exited under its lock after cmd.Wait returned, so ProcessState is set.
	if ps := p.cmd.ProcessState; ps != nil {
		return ps.String()
	}
	return ""
}

// get returns the running plugin, launching it if there is none or it died. With replay, a
// relaunched plugin first gets the remembered Init.
func (c *Client) get(ctx context.Context, replay bool) (*process, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("driver %q: %w", c.cfg.Driver, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("driver %q: client is closed: %w", c.cfg.Driver, errdefs.ErrUnavailable)
	}
	if p := c.proc; p != nil {
		if !p.dead.Load() && !p.pc.Exited() {
			return p, nil
		}
		c.proc = nil
		p.stop()
		c.log.Warn("relaunching driver plugin", "driver", c.cfg.Driver, "path", c.path)
	}
	p, err := c.launch(ctx)
	if err != nil {
		return nil, err
	}
	if replay && c.initOpts != nil {
		if _, err := p.drv.Init(ctx, *c.initOpts); err != nil {
			p.stop()
			return nil, fmt.Errorf("driver %q: replay init on relaunched plugin %s: %w", c.cfg.Driver, c.path, err)
		}
	}
	c.proc = p
	return p, nil
}

// childEnv is the host's environment without the variables the host sets itself.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == streamFDEnv || k == logLevelEnv || k == Handshake.MagicCookieKey {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// launch starts the plugin, connects and checks its identity. Called with c.mu held.
func (c *Client) launch(ctx context.Context) (*process, error) {
	hostConn, pluginEnd, err := newStreamSocketPair()
	if err != nil {
		return nil, fmt.Errorf("driver %q: start plugin %s: %w", c.cfg.Driver, c.path, err)
	}
	cmd := exec.Command(c.path)
	// The plugin's end becomes fd 3 (the first of ExtraFiles).
	cmd.ExtraFiles = []*os.File{pluginEnd}
	cmd.Env = append(childEnv(), streamFDEnv+"=3", logLevelEnv+"="+c.log.GetLevel().String())
	// A backup for the stream socket's EOF: the kernel kills the plugin when the host thread that
	// started it goes away.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          plugin.PluginSet{pluginName: &driverPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           namedLogger{c.log.Named(c.cfg.Driver)},
		// Whatever the plugin writes to its stdout or os.Stderr lands on the host's stderr:
		// the host's stdout belongs to the host (the CLI prints results there).
		SyncStdout:      os.Stderr,
		SyncStderr:      os.Stderr,
		SkipHostEnv:     true,
		GRPCDialOptions: dialOptions(),
	})
	c.started.Store(true)
	rpcClient, err := pc.Client()
	pluginEnd.Close()
	if err != nil {
		pc.Kill()
		hostConn.Close()
		return nil, c.startError(err, cmd)
	}
	raw, err := rpcClient.Dispense(pluginName)
	if err != nil {
		pc.Kill()
		hostConn.Close()
		return nil, fmt.Errorf("driver %q: plugin %s: %w", c.cfg.Driver, c.path, errdefs.WithClass(errdefs.ErrInvalidArgument, err.Error()))
	}
	p := &process{pc: pc, cmd: cmd, fds: &fdSender{conn: hostConn}}
	p.drv = &grpcDriver{
		name:       c.cfg.Driver,
		rpc:        raw.(proto.DriverClient),
		fds:        p.fds,
		exitStatus: p.exitStatus,
		onDied:     func() { p.dead.Store(true) },
	}

	info, err := p.drv.Info(ctx)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("driver %q: plugin %s: %w", c.cfg.Driver, c.path, err)
	}
	if info.Name != c.cfg.Driver {
		p.stop()
		return nil, fmt.Errorf("driver %q: plugin %s serves driver %q, not %q: %w",
			c.cfg.Driver, c.path, info.Name, c.cfg.Driver, errdefs.ErrInvalidArgument)
	}
	if !slices.Contains(info.APIVersions, APIVersion) {
		p.stop()
		return nil, fmt.Errorf("driver %q: plugin %s speaks driver API versions %v, this host speaks version %d: %w",
			c.cfg.Driver, c.path, info.APIVersions, APIVersion, errdefs.ErrInvalidArgument)
	}
	c.log.Debug("driver plugin started", "driver", c.cfg.Driver, "path", c.path, "pid", cmd.Process.Pid, "version", info.Version)
	return p, nil
}

// startError classifies a failed launch: a file the kernel cannot run or a plugin speaking another
// protocol is ErrInvalidArgument; a plugin that exits (or hangs) before the handshake is
// ErrUnavailable, with its exit status.
func (c *Client) startError(err error, cmd *exec.Cmd) error {
	// go-plugin's first line says what happened; the rest is generic advice.
	msg, _, _ := strings.Cut(strings.TrimSpace(err.Error()), "\n")
	msg = strings.TrimSpace(msg)
	if msg == "Unrecognized remote plugin message:" {
		msg = "no handshake from the plugin"
	}
	if errors.Is(err, syscall.ENOEXEC) || errors.Is(err, syscall.EACCES) || strings.Contains(msg, "incompatible") {
		return fmt.Errorf("driver %q: start plugin %s: %s: %w", c.cfg.Driver, c.path, msg, errdefs.ErrInvalidArgument)
	}
	if ps := cmd.ProcessState; ps != nil {
		return fmt.Errorf("driver %q: start plugin %s: %s (plugin %s): %w", c.cfg.Driver, c.path, msg, ps, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("driver %q: start plugin %s: %s: %w", c.cfg.Driver, c.path, msg, errdefs.ErrUnavailable)
}

// namedLogger keeps go-plugin from adding the executable's name to the logger it is given, so
// the plugin's lines appear under Logger.Named(Driver) exactly.
type namedLogger struct{ hclog.Logger }

func (l namedLogger) Named(string) hclog.Logger      { return l }
func (l namedLogger) ResetNamed(string) hclog.Logger { return l }

// do runs fn on the running plugin. With retry, a call that failed because the plugin died runs
// once more on a relaunched plugin.
func (c *Client) do(ctx context.Context, retry bool, fn func(d *grpcDriver) error) error {
	p, err := c.get(ctx, true)
	if err != nil {
		return err
	}
	err = fn(p.drv)
	if err == nil || !retry || ctx.Err() != nil || !errors.Is(err, ErrPluginDied) {
		return err
	}
	c.log.Warn("driver plugin died during a call, retrying on a new plugin", "driver", c.cfg.Driver, "error", err)
	p, rerr := c.get(ctx, true)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	return fn(p.drv)
}

func (c *Client) Info(ctx context.Context) (info Info, err error) {
	err = c.do(ctx, true, func(d *grpcDriver) (err error) { info, err = d.Info(ctx); return })
	return
}

// Init runs Init on the plugin. The options of the latest Init that succeeded are remembered and
// replayed on every relaunch (an Init the driver rejected, say for an unknown option, is not).
func (c *Client) Init(ctx context.Context, opts InitOptions) (Info, error) {
	p, err := c.get(ctx, false)
	if err != nil {
		return Info{}, err
	}
	info, err := p.drv.Init(ctx, opts)
	if err != nil {
		return Info{}, err
	}
	o := opts
	o.Options = slices.Clone(opts.Options)
	c.mu.Lock()
	c.initOpts = &o
	c.mu.Unlock()
	return info, nil
}

func (c *Client) Create(ctx context.Context, id, parent string, opts CreateOpts) error {
	return c.do(ctx, false, func(d *grpcDriver) error { return d.Create(ctx, id, parent, opts) })
}

func (c *Client) Remove(ctx context.Context, id string) error {
	return c.do(ctx, true, func(d *grpcDriver) error { return d.Remove(ctx, id) })
}

func (c *Client) Get(ctx context.Context, id string, opts MountOpts) (path string, err error) {
	err = c.do(ctx, true, func(d *grpcDriver) (err error) { path, err = d.Get(ctx, id, opts); return })
	return
}

func (c *Client) Put(ctx context.Context, id string) error {
	return c.do(ctx, true, func(d *grpcDriver) error { return d.Put(ctx, id) })
}

func (c *Client) Exists(ctx context.Context, id string) (ok bool, err error) {
	err = c.do(ctx, true, func(d *grpcDriver) (err error) { ok, err = d.Exists(ctx, id); return })
	return
}

func (c *Client) ListLayers(ctx context.Context) (ids []string, err error) {
	err = c.do(ctx, true, func(d *grpcDriver) (err error) { ids, err = d.ListLayers(ctx); return })
	return
}

func (c *Client) Status(ctx context.Context) (pairs [][2]string, err error) {
	err = c.do(ctx, true, func(d *grpcDriver) (err error) { pairs, err = d.Status(ctx); return })
	return
}

func (c *Client) Metadata(ctx context.Context, id string) (md map[string]string, err error) {
	err = c.do(ctx, true, func(d *grpcDriver) (err error) { md, err = d.Metadata(ctx, id); return })
	return
}

func (c *Client) Cleanup(ctx context.Context) error {
	return c.do(ctx, false, func(d *grpcDriver) error { return d.Cleanup(ctx) })
}

func (c *Client) Diff(ctx context.Context, id, parent string) (rc io.ReadCloser, err error) {
	err = c.do(ctx, false, func(d *grpcDriver) (err error) { rc, err = d.Diff(ctx, id, parent); return })
	return
}

func (c *Client) ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (n int64, err error) {
	err = c.do(ctx, false, func(d *grpcDriver) (err error) { n, err = d.ApplyDiff(ctx, id, parent, diff); return })
	return
}

func (c *Client) Changes(ctx context.Context, id, parent string) (changes []archive.Change, err error) {
	err = c.do(ctx, true, func(d *grpcDriver) (err error) { changes, err = d.Changes(ctx, id, parent); return })
	return
}

func (c *Client) DiffSize(ctx context.Context, id, parent string) (n int64, err error) {
	err = c.do(ctx, true, func(d *grpcDriver) (err error) { n, err = d.DiffSize(ctx, id, parent); return })
	return
}
