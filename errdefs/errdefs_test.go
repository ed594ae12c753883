package errdefs

import (
	"errors"
	"fmt"
	"testing"
)

func TestSentinelWrapsItsClass(t *testing.T) {
	layerUnknown := Sentinel(ErrNotFound, "layer not known")
	err := fmt.Errorf("mount layer %q: %w", "abc", layerUnknown)
	if !errors.Is(err, layerUnknown) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("errors.Is lost the sentinel or its class: %v", err)
	}
	if errors.Is(err, ErrInUse) {
		t.Fatalf("%v matched a class it does not wrap", err)
	}
	if got := err.Error(); got != `mount layer "abc": layer not known` {
		t.Fatalf("text %q", got)
	}
}

func TestClass(t *testing.T) {
	for _, c := range Classes {
		wrapped := fmt.Errorf("op: %w", WithClass(c, "remote text"))
		if Class(wrapped) != c {
			t.Errorf("Class(%v) = %v, want %v", wrapped, Class(wrapped), c)
		}
		if wrapped.Error() != "op: remote text" {
			t.Errorf("WithClass changed the text: %q", wrapped.Error())
		}
	}
	if Class(errors.New("plain")) != nil || Class(nil) != nil {
		t.Error("an error without a class must have none")
	}
}
