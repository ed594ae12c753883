// Package errdefs holds the closed set of error classes shared by the store, the plugin contract and
// every driver.
//
// Every error a public function returns wraps exactly one class (directly or through a domain
// sentinel made with Sentinel), so callers branch with errors.Is on the class or the sentinel and
// never on message text. The classes are what survives the gRPC boundary between the store and a
// driver plugin: pluginapi maps each class to a gRPC status code and back, so errors.Is behaves the
// same whether a driver runs in-process or as a subprocess.
package errdefs

import "errors"

// The error classes. The set is closed: pluginapi maps exactly these across gRPC.
var (
	// ErrNotFound: the named layer, image, container, key or file does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the ID or name is already held by another item.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInUse: the item is needed by another (a child layer, an image, a container, a mount).
	ErrInUse = errors.New("in use")
	// ErrInvalidArgument: the caller's input is malformed (bad option, hostile tar, bad digest).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotSupported: the driver or the store cannot do this at all (on this kernel).
	ErrNotSupported = errors.New("not supported")
	// ErrUnavailable: a component needed for the call is gone or not reachable (a dead plugin).
	ErrUnavailable = errors.New("unavailable")
	// ErrCorrupt: stored state or a stream is damaged (truncated JSON, a cut diff stream).
	ErrCorrupt = errors.New("corrupt")
)

// Classes lists every class, in a fixed order.
var Classes = []error{ErrNotFound, ErrAlreadyExists, ErrInUse, ErrInvalidArgument, ErrNotSupported, ErrUnavailable, ErrCorrupt}

// Class returns the class err wraps, or nil when it wraps none.
func Class(err error) error {
	for _, c := range Classes {
		if errors.Is(err, c) {
			return c
		}
	}
	return nil
}

// sentinel is a domain error (such as "layer not known") that belongs to a class.
type sentinel struct {
	msg   string
	class error
}

func (s *sentinel) Error() string { return s.msg }
func (s *sentinel) Unwrap() error { return s.class }

// Sentinel returns a new domain error with text msg that wraps class, so that both
// errors.Is(err, theSentinel) and errors.Is(err, class) hold for errors wrapping it.
func Sentinel(class error, msg string) error { return &sentinel{msg: msg, class: class} }

// WithClass returns an error whose text is msg and that wraps class. It is how an error that
// crossed a process boundary (text plus class) is rebuilt.
func WithClass(class error, msg string) error { return &sentinel{msg: msg, class: class} }
