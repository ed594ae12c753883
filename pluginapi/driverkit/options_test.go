package driverkit

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pluggable-storage/storage/errdefs"
)

func TestParseOptions(t *testing.T) {
	prefixes := []string{"overlay2.", "overlay.", "."}
	cases := []struct {
		raw        string
		key, name  string
		value      string
		wantErr    bool
		wantErrMsg string
	}{
		{raw: "mountopt=nodev", key: "mountopt", name: "mountopt", value: "nodev"},
		{raw: "overlay.mountopt=nodev", key: "overlay.mountopt", name: "mountopt", value: "nodev"},
		{raw: "overlay2.mountopt=nodev", key: "overlay2.mountopt", name: "mountopt", value: "nodev"},
		{raw: ".mountopt=nodev", key: ".mountopt", name: "mountopt", value: "nodev"},
		{raw: " Overlay.Skip_Mount_Home = true ", key: "Overlay.Skip_Mount_Home", name: "skip_mount_home", value: "true"},
		// Only the first matching prefix goes, and only at the start.
		{raw: "overlay..size=1", key: "overlay..size", name: ".size", value: "1"},
		{raw: "vfs.size=1", key: "vfs.size", name: "vfs.size", value: "1"},
		{raw: "mountopt=a=b", key: "mountopt", name: "mountopt", value: "a=b"},
		{raw: "size=", key: "size", name: "size", value: ""},
		{raw: "overlay.mountopt", wantErr: true, wantErrMsg: `overlay option "overlay.mountopt": want key=value`},
	}
	for _, c := range cases {
		t.Run(c.raw, func(t *testing.T) {
			opts, err := ParseOptions("overlay", []string{c.raw}, prefixes...)
			if c.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.wantErrMsg) {
					t.Fatalf("ParseOptions(%q) = %v, want ErrInvalidArgument saying %q", c.raw, err, c.wantErrMsg)
				}
				return
			}
			want := []Option{{Driver: "overlay", Key: c.key, Name: c.name, Value: c.value}}
			if err != nil || !slices.Equal(opts, want) {
				t.Fatalf("ParseOptions(%q) = %+v, %v; want %+v", c.raw, opts, err, want)
			}
		})
	}
}

func TestParseOptionsKeepsOrder(t *testing.T) {
	opts, err := ParseOptions("vfs", []string{"vfs.b=1", "a=2", ".b=3"}, "vfs.", ".")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range opts {
		got = append(got, o.Name+"="+o.Value)
	}
	if want := []string{"b=1", "a=2", "b=3"}; !slices.Equal(got, want) {
		t.Fatalf("options %q, want %q", got, want)
	}
}

// TestOptionErrors: every error about an option names the driver and the key as written, and
// wraps the class.
func TestOptionErrors(t *testing.T) {
	opt := func(key, val string) Option {
		opts, err := ParseOptions("btrfs", []string{key + "=" + val}, "btrfs.", ".")
		if err != nil {
			t.Fatal(err)
		}
		return opts[0]
	}
	cases := []struct {
		name    string
		err     error
		class   error
		wantMsg string
	}{
		{"unknown", opt("BTRFS.Nope", "1").Unknown(), errdefs.ErrInvalidArgument, "btrfs option BTRFS.Nope: unknown option"},
		{"bool", second(opt("btrfs.quota", "maybe").Bool()), errdefs.ErrInvalidArgument, `btrfs option btrfs.quota: "maybe" is not a boolean`},
		{"size", second(opt("btrfs.min_space", "lots").Size()), errdefs.ErrInvalidArgument, `btrfs option btrfs.min_space: size "lots": not a size`},
		{"errorf", opt("btrfs.x", "1").Errorf("x is %s: %w", "retired", errdefs.ErrNotSupported), errdefs.ErrNotSupported, "btrfs option btrfs.x: x is retired"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !errors.Is(c.err, c.class) || !strings.Contains(fmtErr(c.err), c.wantMsg) {
				t.Fatalf("error %v, want %v saying %q", c.err, c.class, c.wantMsg)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestOptionValues(t *testing.T) {
	o := Option{Driver: "vfs", Key: "k"}
	for _, c := range []struct {
		val  string
		want bool
	}{{"true", true}, {"1", true}, {"T", true}, {"false", false}, {"0", false}} {
		o.Value = c.val
		if b, err := o.Bool(); err != nil || b != c.want {
			t.Errorf("Bool(%q) = %v, %v; want %v", c.val, b, err, c.want)
		}
	}
	o.Value = "1.5m"
	if n, err := o.Size(); err != nil || n != 3<<19 {
		t.Errorf("Size(1.5m) = %d, %v; want %d", n, err, 3<<19)
	}
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "4096", want: 4096},
		{in: " 4096 ", want: 4096},
		{in: "512k", want: 512 << 10},
		{in: "512KiB", want: 512 << 10},
		{in: "50M", want: 50 << 20},
		{in: "50mb", want: 50 << 20},
		{in: "1.5g", want: 3 << 29},
		{in: "10GiB", want: 10 << 30},
		{in: "2t", want: 2 << 40},
		{in: "1p", want: 1 << 50},
		{in: "4096b", want: 4096},
		{in: "", wantErr: true},
		{in: "lots", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "1x", wantErr: true},
		{in: "k", wantErr: true},
		{in: "8192p", wantErr: true}, // 2^63 bytes
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			n, err := ParseSize(c.in)
			if c.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"`+c.in+`"`) {
					t.Fatalf("ParseSize(%q) = %d, %v; want ErrInvalidArgument naming it", c.in, n, err)
				}
				return
			}
			if err != nil || n != c.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", c.in, n, err, c.want)
			}
		})
	}
}

func TestSplitList(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ,", nil},
		{"nodev", []string{"nodev"}},
		{"/a, /b,,/c ", []string{"/a", "/b", "/c"}},
	}
	for _, c := range cases {
		if got := SplitList(c.in); !slices.Equal(got, c.want) {
			t.Errorf("SplitList(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStorageSize(t *testing.T) {
	cases := []struct {
		name    string
		opts    map[string]string
		want    uint64
		wantErr string // "" for success
	}{
		{name: "none", opts: nil, want: 0},
		{name: "size", opts: map[string]string{"size": "8M"}, want: 8 << 20},
		{name: "any case", opts: map[string]string{"Size": "1g"}, want: 1 << 30},
		{name: "not a size", opts: map[string]string{"size": "lots"}, wantErr: "storage option size: size \"lots\""},
		{name: "zero", opts: map[string]string{"size": "0"}, wantErr: "storage option size: size must be positive"},
		{name: "unknown key", opts: map[string]string{"inodes": "10"}, wantErr: "unknown storage option inodes"},
		{name: "unknown key first in order", opts: map[string]string{"size": "1m", "a_key": "x"}, wantErr: "unknown storage option a_key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := StorageSize(c.opts)
			if c.wantErr != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("StorageSize(%v) = %d, %v; want ErrInvalidArgument saying %q", c.opts, n, err, c.wantErr)
				}
				return
			}
			if err != nil || n != c.want {
				t.Fatalf("StorageSize(%v) = %d, %v; want %d", c.opts, n, err, c.want)
			}
		})
	}
}
