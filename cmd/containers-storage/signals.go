package main

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pluggable-storage/storage/core"
)

// storeCloser closes the store exactly once, whether from the normal return path or from the
// signal handler, so that the driver plugin process is always stopped. close waits until Open
// has returned (a signal can arrive while the store is being opened).
type storeCloser struct {
	once   sync.Once
	ready  chan struct{} // closed by opened
	store  *core.Store   // set before ready is closed; nil if Open failed
	logger hclog.Logger
}

func newStoreCloser(logger hclog.Logger) *storeCloser {
	return &storeCloser{ready: make(chan struct{}), logger: logger}
}

// opened records the result of Open; call it exactly once.
func (c *storeCloser) opened(s *core.Store) {
	c.store = s
	close(c.ready)
}

func (c *storeCloser) close() {
	c.once.Do(func() {
		<-c.ready
		if c.store == nil {
			return
		}
		if err := c.store.Close(); err != nil {
			c.logger.Error("closing the store", "error", err)
		}
	})
}

// closeTimeout bounds how long a signal waits for the store to close before the driver plugin
// is killed outright.
const closeTimeout = 3 * time.Second

// handleSignals makes SIGINT and SIGTERM cancel the command's context, close the store and exit
// with 128+signal. If closing does not finish in closeTimeout (Open or an operation holding the
// store does not return), or a second signal arrives, the driver plugin processes this process
// started are killed and we exit anyway: the plugin must not outlive the command. SIGPIPE is
// caught (and ignored) so that a closed stdout turns into a write error that ends the command
// through the normal path, which closes the store, instead of killing the process and orphaning
// the plugin. It returns a function that stops the handling.
func handleSignals(cancel context.CancelFunc, closer *storeCloser) func() {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		for {
			var sig os.Signal
			select {
			case <-done:
				return
			case sig = <-ch:
			}
			if sig == syscall.SIGPIPE {
				continue
			}
			cancel()
			closed := make(chan struct{})
			go func() {
				closer.close()
				close(closed)
			}()
			select {
			case <-closed:
			case <-time.After(closeTimeout):
				killDriverChildren()
			case <-waitSignal(ch):
				killDriverChildren()
			}
			os.Exit(128 + int(sig.(syscall.Signal)))
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// waitSignal returns a channel closed when a signal other than SIGPIPE arrives on ch.
func waitSignal(ch <-chan os.Signal) <-chan struct{} {
	got := make(chan struct{})
	go func() {
		for sig := range ch {
			if sig != syscall.SIGPIPE {
				close(got)
				return
			}
		}
	}()
	return got
}

// killDriverChildren SIGKILLs our child processes that run a driver plugin
// (containers-storage-driver-*), the last resort when the store cannot be closed.
func killDriverChildren() {
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name: state, ppid, ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(self) {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || !strings.HasPrefix(filepath.Base(exe), "containers-storage-driver-") {
			continue
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
