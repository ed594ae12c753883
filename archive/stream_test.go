package archive

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// countingRelease returns a release func and a pointer to how often it ran.
func countingRelease(err error) (func() error, *int) {
	n := 0
	return func() error { n++; return err }, &n
}

func TestStreamReadWriteToAndClose(t *testing.T) {
	produce := func(w io.Writer) error { _, err := io.WriteString(w, "layer bytes"); return err }
	releaseErr := errors.New("release failed")
	for _, tc := range []struct {
		name    string
		consume func(io.ReadCloser) (string, error)
	}{
		{"Read", func(s io.ReadCloser) (string, error) { b, err := io.ReadAll(s); return string(b), err }},
		{"WriteTo", func(s io.ReadCloser) (string, error) {
			var buf bytes.Buffer
			_, err := s.(io.WriterTo).WriteTo(&buf)
			return buf.String(), err
		}},
		{"Close before use", func(s io.ReadCloser) (string, error) { return "", nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release, n := countingRelease(nil)
			s := NewStream(produce, release)
			got, err := tc.consume(s)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name != "Close before use" && got != "layer bytes" {
				t.Fatalf("got %q", got)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if *n != 1 {
				t.Fatalf("release ran %d times, want once", *n)
			}
		})
	}
	t.Run("release error reaches the reader and Close", func(t *testing.T) {
		release, _ := countingRelease(releaseErr)
		s := NewStream(produce, release)
		if _, err := io.ReadAll(s); !errors.Is(err, releaseErr) {
			t.Fatalf("read error %v, want the release error", err)
		}
		if err := s.Close(); !errors.Is(err, releaseErr) {
			t.Fatalf("Close returned %v", err)
		}
	})
	t.Run("Close stops a producer blocked on its reader", func(t *testing.T) {
		release, n := countingRelease(nil)
		s := NewStream(func(w io.Writer) error {
			for {
				if _, err := io.WriteString(w, strings.Repeat("x", 4096)); err != nil {
					return err
				}
			}
		}, release)
		if _, err := s.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		s.Close() // returns only after the producer stopped and release ran
		if *n != 1 {
			t.Fatalf("release ran %d times", *n)
		}
	})
}
