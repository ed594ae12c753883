package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pluggable-storage/storage/errdefs"
	"golang.org/x/sys/unix"
)

// advEnv is the playground of one adversarial case: root is the layer root, a subdirectory of
// tmp; tmp also holds sentinel files and directories that no entry may touch.
type advEnv struct {
	tmp, root string
	host      string // a name that must never appear at the host's "/" or "/tmp"
}

type advCase struct {
	name    string
	format  WhiteoutFormat
	prepare func(t *testing.T, e advEnv)        // optional: pre-existing layer content
	build   func(t *testing.T, e advEnv) []byte // the hostile tar
	wantErr error                               // the class Apply must fail with, nil for success
	errText string                              // optional text the error must contain
	check   func(t *testing.T, e advEnv)        // optional check of the contained result
}

func entries(ents ...ent) func(*testing.T, advEnv) []byte {
	return func(t *testing.T, _ advEnv) []byte { return buildTar(t, ents...) }
}

func wantFile(rel, content string) func(*testing.T, advEnv) {
	return func(t *testing.T, e advEnv) {
		t.Helper()
		if got := readString(t, filepath.Join(e.root, rel)); got != content {
			t.Errorf("%s = %q, want %q", rel, got, content)
		}
	}
}

func wantSymlink(rel, target string) func(*testing.T, advEnv) {
	return func(t *testing.T, e advEnv) {
		t.Helper()
		got, err := os.Readlink(filepath.Join(e.root, rel))
		if err != nil || got != target {
			t.Errorf("readlink %s = %q, %v; want %q", rel, got, err, target)
		}
	}
}

func wantAbsent(rel string) func(*testing.T, advEnv) {
	return func(t *testing.T, e advEnv) {
		t.Helper()
		if _, err := os.Lstat(filepath.Join(e.root, rel)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists in the layer (err %v), want it absent", rel, err)
		}
	}
}

func checks(fns ...func(*testing.T, advEnv)) func(*testing.T, advEnv) {
	return func(t *testing.T, e advEnv) {
		for _, f := range fns {
			f(t, e)
		}
	}
}

func adversarialCases() []advCase {
	const pwned = "PWNED"
	rawHeader := func(name string, typ byte, size int64, body string) []byte {
		// A header written by hand, for names tar.Writer would refuse to write.
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		_ = tw.WriteHeader(&tar.Header{Typeflag: typ, Name: "placeholder", Mode: 0o644, Size: size, ModTime: testTime})
		_, _ = tw.Write([]byte(body))
		_ = tw.Close()
		out := b.Bytes()
		copy(out[0:100], make([]byte, 100))
		copy(out[0:100], name)
		// Recompute the checksum field (bytes 148..156).
		copy(out[148:156], "        ")
		var sum int64
		for _, c := range out[:512] {
			sum += int64(c)
		}
		copy(out[148:156], fmt.Sprintf("%06o\x00 ", sum))
		return out
	}
	return []advCase{
		{name: "dotdot name", build: entries(file("../escape.txt", pwned)), wantErr: errdefs.ErrInvalidArgument, errText: "outside the layer root"},
		{name: "dotdot nested name", build: entries(file("a/../../escape.txt", pwned)), wantErr: errdefs.ErrInvalidArgument},
		{name: "dotdot deep name", build: entries(file("a/b/../../../../outside.txt", pwned)), wantErr: errdefs.ErrInvalidArgument},
		{name: "dotdot directory", build: entries(dirEnt("../")), wantErr: errdefs.ErrInvalidArgument},
		{name: "absolute dotdot name", build: entries(file("/../outside.txt", pwned)), wantErr: errdefs.ErrInvalidArgument},
		{name: "dot slash dotdot name", build: entries(file("./../outside.txt", pwned)), wantErr: errdefs.ErrInvalidArgument},
		{name: "dotdot name over PAX long name", build: entries(file("../"+strings.Repeat("x", 150), pwned)), wantErr: errdefs.ErrInvalidArgument},
		{name: "dotdot name in a raw header", build: func(t *testing.T, _ advEnv) []byte { return rawHeader("../outside.txt", tar.TypeReg, 5, pwned) },
			wantErr: errdefs.ErrInvalidArgument},
		{
			name: "absolute name is contained",
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, file("/"+e.host+"/x", pwned), file(e.tmp+"/outside.txt", pwned))
			},
			check: func(t *testing.T, e advEnv) {
				wantFile(e.host+"/x", pwned)(t, e)
				wantFile(strings.TrimPrefix(e.tmp, "/")+"/outside.txt", pwned)(t, e)
			},
		},
		{
			name: "write through absolute symlink to outside dir",
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, symlink("evil", e.tmp+"/outdir"), file("evil/pwned.txt", pwned))
			},
			wantErr: errdefs.ErrInvalidArgument, errText: "dangling symlink",
		},
		{
			name: "write through absolute symlink lands inside root (chroot semantics)",
			build: func(t *testing.T, e advEnv) []byte {
				inner := strings.TrimPrefix(e.tmp, "/") + "/outdir/"
				return buildTar(t, dirEnt(inner), symlink("evil", e.tmp+"/outdir"), file("evil/pwned.txt", pwned))
			},
			check: func(t *testing.T, e advEnv) {
				wantFile(strings.TrimPrefix(e.tmp, "/")+"/outdir/pwned.txt", "PWNED")(t, e)
			},
		},
		{
			name: "overwrite outside file through absolute symlink to its directory",
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, symlink("up", e.tmp), file("up/outside.txt", pwned))
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:  "absolute symlink to /etc writes the layer's etc",
			build: entries(dirEnt("etc/"), file("etc/passwd", "root:x:0:0"), symlink("hostetc", "/etc"), file("hostetc/passwd", pwned)),
			check: checks(wantFile("etc/passwd", pwned), wantSymlink("hostetc", "/etc")),
		},
		{
			name:    "relative symlink climbing out, target missing in root",
			build:   entries(symlink("evil", "../outdir"), file("evil/pwned.txt", pwned)),
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:  "relative symlink climbing out is clamped at root",
			build: entries(dirEnt("outdir/"), symlink("evil", "../outdir"), file("evil/secret.txt", pwned)),
			check: wantFile("outdir/secret.txt", pwned),
		},
		{
			name:  "deep relative symlink climbing out is clamped at root",
			build: entries(dirEnt("a/b/"), dirEnt("outdir/"), symlink("a/b/evil", "../../../../../../outdir"), file("a/b/evil/secret.txt", pwned)),
			check: wantFile("outdir/secret.txt", pwned),
		},
		{
			name:  "symlink component in the middle of a later path",
			build: entries(dirEnt("d/"), symlink("d/l", "../../.."), file("d/l/outside.txt", pwned)),
			check: wantFile("outside.txt", pwned),
		},
		{
			name:  "symlink chain relative",
			build: entries(symlink("l1", "l2"), symlink("l2", "l3/../../.."), dirEnt("l3/"), file("l1/outside.txt", pwned)),
			check: wantFile("outside.txt", pwned),
		},
		{
			name: "symlink chain ending outside absolutely",
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, symlink("l1", "/l2"), symlink("l2", e.tmp), file("l1/outside.txt", pwned))
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "symlink loop",
			build:   entries(symlink("a", "b"), symlink("b", "a"), file("a/x", pwned)),
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "symlink through /proc magic link",
			build:   entries(symlink("p", "/proc/self/root"), file("p/"+"x", pwned)),
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name: "regular file replaces symlink to outside file",
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, symlink("x", e.tmp+"/outside.txt"), file("x", pwned))
			},
			check: wantFile("x", pwned),
		},
		{
			name: "directory replaced by symlink, then written through",
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, dirEnt("d/"), file("d/a", "a"), symlink("d", e.tmp+"/outdir"), file("d/b", pwned))
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name: "pre-existing absolute symlink in the layer",
			prepare: func(t *testing.T, e advEnv) {
				if err := os.Symlink(e.tmp+"/outdir", filepath.Join(e.root, "evil")); err != nil {
					t.Fatal(err)
				}
			},
			build:   entries(file("evil/secret.txt", pwned)),
			wantErr: errdefs.ErrInvalidArgument,
		},
		{name: "hard link target dotdot", build: entries(hardlink("h", "../outside.txt")), wantErr: errdefs.ErrInvalidArgument, errText: "outside the layer root"},
		{
			name: "hard link target absolute outside",
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, hardlink("h", e.tmp+"/outside.txt"))
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name: "hard link target through absolute symlink to outside",
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, symlink("l", e.tmp), hardlink("h", "l/outside.txt"))
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "hard link target through relative symlink climbing out",
			build:   entries(symlink("l", "../.."), hardlink("h", "l/outside.txt")),
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:  "hard link target through symlink resolves inside root",
			build: entries(dirEnt("etc/"), file("etc/passwd", "inside"), symlink("l", "/etc"), hardlink("h", "l/passwd")),
			check: func(t *testing.T, e advEnv) {
				var a, b unix.Stat_t
				if err := unix.Lstat(filepath.Join(e.root, "h"), &a); err != nil {
					t.Fatal(err)
				}
				if err := unix.Lstat(filepath.Join(e.root, "etc/passwd"), &b); err != nil {
					t.Fatal(err)
				}
				if a.Ino != b.Ino {
					t.Errorf("h is not a hard link of etc/passwd")
				}
			},
		},
		{
			name: "hard link to a symlink pointing outside links the symlink",
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, symlink("l", e.tmp+"/outside.txt"), hardlink("h", "l"))
			},
			check: func(t *testing.T, e advEnv) { wantSymlink("h", e.tmp+"/outside.txt")(t, e) },
		},
		{name: "hard link to a directory", build: entries(dirEnt("d/"), hardlink("h", "d")), wantErr: errdefs.ErrInvalidArgument},
		{name: "hard link to the root", build: entries(hardlink("h", "./")), wantErr: errdefs.ErrInvalidArgument},
		{name: "whiteout of dot", build: entries(file(".wh..", "")), wantErr: errdefs.ErrInvalidArgument},
		{name: "whiteout of dotdot", build: entries(file(".wh...", "")), wantErr: errdefs.ErrInvalidArgument},
		{name: "whiteout of dotdot in a subdir", build: entries(dirEnt("d/"), file("d/.wh...", "")), wantErr: errdefs.ErrInvalidArgument},
		{name: "whiteout of a path outside", build: entries(file("../.wh.outside.txt", "")), wantErr: errdefs.ErrInvalidArgument},
		{name: "whiteout of outdir via dotdot dir", build: entries(file("../outdir/.wh.secret.txt", "")), wantErr: errdefs.ErrInvalidArgument},
		{
			name: "whiteout through absolute symlink to outside",
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, symlink("l", e.tmp), file("l/.wh.outside.txt", ""))
			},
		},
		{
			name:    "whiteout through relative symlink climbing out removes inside",
			prepare: func(t *testing.T, e advEnv) { mustWrite(t, filepath.Join(e.root, "outside.txt"), "inside", 0o644) },
			build:   entries(symlink("l", "../../.."), file("l/.wh.outside.txt", "")),
			check:   wantAbsent("outside.txt"),
		},
		{
			name: "opaque marker through absolute symlink to outside",
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, symlink("l", e.tmp+"/outdir"), file("l/.wh..wh..opq", ""))
			},
		},
		{
			name:    "opaque marker through relative symlink climbing out",
			prepare: func(t *testing.T, e advEnv) { mustWrite(t, filepath.Join(e.root, "old"), "old", 0o644) },
			build:   entries(symlink("l", ".."), file("l/.wh..wh..opq", "")),
			check:   checks(wantAbsent("old"), wantSymlink("l", "..")),
		},
		{
			name:   "overlay whiteout through absolute symlink to outside",
			format: WhiteoutOverlay,
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, symlink("l", e.tmp), file("l/.wh.outside.txt", ""))
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:   "overlay opaque through absolute symlink to outside",
			format: WhiteoutOverlay,
			build: func(t *testing.T, e advEnv) []byte {
				return buildTar(t, symlink("l", e.tmp+"/outdir"), file("l/.wh..wh..opq", ""))
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{name: "overlay whiteout of dotdot", format: WhiteoutOverlay, build: entries(file(".wh...", "")), wantErr: errdefs.ErrInvalidArgument},
		{
			name:   "overlay xattrs carried by the tar are dropped",
			format: WhiteoutOverlay,
			build: func(t *testing.T, e advEnv) []byte {
				d := dirEnt("d/")
				d.hdr.PAXRecords = map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/" + e.tmp, "SCHILY.xattr.user.ok": "1"}
				return buildTar(t, d)
			},
			check: func(t *testing.T, e advEnv) {
				x, err := readXattrs(filepath.Join(e.root, "d"))
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := x["trusted.overlay.redirect"]; ok || x["user.ok"] != "1" {
					t.Errorf("xattrs of d = %v, want only user.ok", x)
				}
			},
		},
		{
			name: "owner id out of range",
			build: func(t *testing.T, _ advEnv) []byte {
				f := file("f", "x")
				f.hdr.Uid = 1<<32 - 1
				f.hdr.Format = tar.FormatPAX
				return buildTar(t, f)
			},
			wantErr: errdefs.ErrInvalidArgument, errText: "out of range",
		},
		{name: "root entry as a regular file", build: entries(file(".", pwned)), wantErr: errdefs.ErrInvalidArgument},
		{name: "root entry as a symlink", build: entries(symlink("/", "/")), wantErr: errdefs.ErrInvalidArgument},
		{
			name:  "absolute symlinks are created verbatim",
			build: entries(symlink("shadow", "/etc/shadow"), symlink("up", "../../../..")),
			check: checks(wantSymlink("shadow", "/etc/shadow"), wantSymlink("up", "../../../..")),
		},
		{
			name:  "device entry stays inside",
			build: entries(charDev("dev/null", 1, 3), charDev("/dev/zero2", 1, 5)),
			check: func(t *testing.T, e advEnv) {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(e.root, "dev/zero2"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
					t.Errorf("dev/zero2: %v mode %o", err, st.Mode)
				}
			},
		},
		{
			name:    "file below a regular file",
			build:   entries(file("f", "x"), file("f/g", pwned)),
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name: "truncated tar",
			build: func(t *testing.T, e advEnv) []byte {
				b := buildTar(t, file("big", strings.Repeat("x", 4096)))
				return b[:512+1000]
			},
			wantErr: errdefs.ErrInvalidArgument, errText: "unexpected EOF",
		},
		{
			name: "garbage header",
			build: func(t *testing.T, e advEnv) []byte {
				b := buildTar(t, file("a", "x"))
				b[148] = 'z' // break the checksum
				return b
			},
			wantErr: errdefs.ErrInvalidArgument, errText: "invalid tar header",
		},
	}
}

func TestApplyAdversarial(t *testing.T) {
	requireRoot(t)
	hostName := fmt.Sprintf("archive-escape-%d", os.Getpid())
	etcBefore := describe(t, "/etc/passwd")
	cases := adversarialCases()
	if len(cases) < 30 {
		t.Fatalf("only %d adversarial cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			e := advEnv{tmp: tmp, root: filepath.Join(tmp, "root"), host: hostName}
			for _, d := range []string{e.root, filepath.Join(tmp, "outdir/sub"), filepath.Join(tmp, "rootx")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			mustWrite(t, filepath.Join(tmp, "outside.txt"), "secret", 0o644)
			mustWrite(t, filepath.Join(tmp, "outdir/secret.txt"), "secret", 0o600)
			mustWrite(t, filepath.Join(tmp, "rootx/file"), "secret", 0o644)
			if err := os.Symlink("outdir", filepath.Join(tmp, "link-to-outdir")); err != nil {
				t.Fatal(err)
			}
			if tc.prepare != nil {
				tc.prepare(t, e)
			}
			before := snapshot(t, tmp, e.root)

			_, err := Apply(context.Background(), e.root, bytes.NewReader(tc.build(t, e)), ApplyOptions{WhiteoutFormat: tc.format})
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("Apply: %v, want success", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("Apply error = %v, want class %v", err, tc.wantErr)
			case tc.errText != "" && (err == nil || !strings.Contains(err.Error(), tc.errText)):
				t.Errorf("Apply error = %v, want it to contain %q", err, tc.errText)
			}
			if tc.check != nil {
				tc.check(t, e)
			}

			if d := diffSnapshots(before, snapshot(t, tmp, e.root)); len(d) > 0 {
				t.Errorf("Apply changed things outside the root:\n%s", strings.Join(d, "\n"))
			}
			for _, p := range []string{"/" + hostName, "/tmp/" + hostName, filepath.Dir(tmp) + "/escape.txt"} {
				if _, err := os.Lstat(p); err == nil {
					os.RemoveAll(p)
					t.Errorf("Apply created %s on the host", p)
				}
			}
			if got := describe(t, "/etc/passwd"); got != etcBefore {
				t.Errorf("host /etc/passwd changed: %s -> %s", etcBefore, got)
			}
		})
	}
	t.Logf("%d adversarial cases", len(cases))
}
