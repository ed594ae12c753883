package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
	"github.com/ulikunitz/xz"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/core"
)

func init() {
	const layerPair = "[options [...]] layerNameOrID [referenceLayerNameOrID]"
	register(
		&command{
			names:       []string{"changes"},
			optionsHelp: layerPair,
			usage:       "Compare two layers",
			minArgs:     1,
			maxArgs:     2,
			action:      changes,
			addFlags:    addJSON,
		},
		&command{
			names:       []string{"diffsize", "diff-size"},
			optionsHelp: layerPair,
			usage:       "Compare two layers",
			minArgs:     1,
			maxArgs:     2,
			action:      diffSize,
		},
		&command{
			names:       []string{"diff"},
			optionsHelp: layerPair,
			usage:       "Compare two layers",
			minArgs:     1,
			maxArgs:     2,
			action:      diff,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				fs.StringVarP(&f.file, "file", "f", "", "Write to file instead of stdout")
				fs.BoolVarP(&f.uncompressed, "uncompressed", "u", false, "Use no compression")
				fs.BoolVarP(&f.gzip, "gzip", "c", false, "Compress using gzip")
				fs.BoolVarP(&f.bzip2, "bzip2", "b", false, "Compress using bzip2")
				fs.BoolVar(&f.bzip2, "bz2", false, "Compress using bzip2")
				fs.BoolVarP(&f.xz, "xz", "x", false, "Compress using xz")
			},
		},
		&command{
			names:       []string{"applydiff", "apply-diff"},
			optionsHelp: "[options [...]] layerNameOrID [referenceLayerNameOrID]",
			usage:       "Apply a diff to a layer",
			minArgs:     1,
			maxArgs:     1,
			action:      applyDiff,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				fs.StringVarP(&f.file, "file", "f", "", "Read from file instead of stdin")
			},
		},
		&command{
			names:       []string{"applydiff-using-staging-dir"},
			optionsHelp: "layerNameOrID directory",
			usage:       "Apply a diff to a layer using a staging directory",
			minArgs:     2,
			maxArgs:     2,
			action: func(inv *invocation, args []string) (int, error) {
				return 1, notSupported("applydiff-using-staging-dir: staged (zstd:chunked) layers")
			},
		},
	)
}

// layerPair splits "layer [from]"; from "" means the layer's parent.
func layerPair(args []string) (to, from string) {
	to = args[0]
	if len(args) > 1 {
		from = args[1]
	}
	return to, from
}

func changes(inv *invocation, args []string) (int, error) {
	to, from := layerPair(args)
	list, err := inv.store.Changes(inv.ctx, from, to)
	if err != nil {
		return 1, err
	}
	if inv.flags.json {
		return inv.outputJSON(nilIfEmpty(list))
	}
	for _, c := range list {
		inv.printf("%s\n", c.String())
	}
	return 0, nil
}

func diffSize(inv *invocation, args []string) (int, error) {
	to, from := layerPair(args)
	n, err := inv.store.DiffSize(inv.ctx, from, to)
	if err != nil {
		return 1, err
	}
	inv.printf("%d\n", n)
	return 0, nil
}

// diff writes the layer's diff as a tar stream, by default with the compression the layer was
// imported with; -u, -c, -b, -x choose (the last in that order wins). The store compresses
// gzip and zstd itself; xz is compressed here, and bzip2 (which Go cannot write) is refused,
// as the established tool refuses it.
func diff(inv *invocation, args []string) (int, error) {
	to, from := layerPair(args)
	f := inv.flags
	var want archive.Compression
	switch {
	case f.xz:
		want = archive.Xz
	case f.bzip2:
		want = archive.Bzip2
	case f.gzip:
		want = archive.Gzip
	case f.uncompressed:
		want = archive.Uncompressed
	default:
		l, err := inv.store.Layer(to)
		if err != nil {
			return 1, err
		}
		want = l.CompressionType
	}
	opts := core.DiffOptions{Compression: &want}
	switch want {
	case archive.Bzip2:
		return 1, notSupported(fmt.Sprintf("diff layer %s: %s compression", to, want))
	case archive.Xz:
		none := archive.Uncompressed
		opts.Compression = &none
	}

	out := inv.stdout
	var file *os.File
	if f.file != "" {
		var err error
		if file, err = os.Create(f.file); err != nil {
			return 1, err
		}
		defer file.Close()
		out = file
	}
	rc, err := inv.store.Diff(inv.ctx, from, to, opts)
	if err != nil {
		return 1, err
	}
	err = copyCompressed(out, rc, want)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err == nil && file != nil {
		err = file.Close()
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

// copyCompressed copies the stream to w, xz-compressing it when c is Xz (the store has already
// applied any other compression).
func copyCompressed(w io.Writer, r io.Reader, c archive.Compression) error {
	if c != archive.Xz {
		_, err := io.Copy(w, r)
		return err
	}
	xw, err := xz.NewWriter(w)
	if err != nil {
		return err
	}
	if _, err := io.Copy(xw, r); err != nil {
		xw.Close()
		return err
	}
	return xw.Close()
}

func applyDiff(inv *invocation, args []string) (int, error) {
	in, err := inv.input()
	if err != nil {
		return 1, err
	}
	defer in.Close()
	if _, err := inv.store.ApplyDiff(inv.ctx, args[0], in); err != nil {
		return 1, err
	}
	return 0, nil
}
