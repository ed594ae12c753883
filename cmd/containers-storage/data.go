package main

import (
	"bytes"
	"io"
	"os"

	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/pflag"
)

// bigData is the store's big-data access for one kind of item. Layers record neither sizes
// nor digests, so size and digest are nil for them.
type bigData struct {
	kind   string // "layer", "image", "container": the command names are built from it
	noun   string // for usage texts ("a layer")
	list   func(inv *invocation, ref string) ([]string, error)
	get    func(inv *invocation, ref, key string) (io.ReadCloser, error)
	set    func(inv *invocation, ref, key string, r io.Reader) error
	size   func(inv *invocation, ref, key string) (int64, error)
	digest func(inv *invocation, ref, key string) (digest.Digest, error)
}

// manifestDigest is the manifest-digest callback the CLI gives the store: the plain sha256 of
// the bytes.
func manifestDigest(b []byte) (digest.Digest, error) { return digest.Canonical.FromBytes(b), nil }

func bytesReader(b []byte, err error) (io.ReadCloser, error) {
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

var bigDataKinds = []bigData{
	{
		kind: "layer", noun: "a layer",
		list: func(inv *invocation, ref string) ([]string, error) { return inv.store.ListLayerBigData(ref) },
		get: func(inv *invocation, ref, key string) (io.ReadCloser, error) {
			return inv.store.LayerBigData(ref, key)
		},
		set: func(inv *invocation, ref, key string, r io.Reader) error {
			return inv.store.SetLayerBigData(ref, key, r)
		},
	},
	{
		kind: "image", noun: "an image",
		list: func(inv *invocation, ref string) ([]string, error) { return inv.store.ListImageBigData(ref) },
		get: func(inv *invocation, ref, key string) (io.ReadCloser, error) {
			return bytesReader(inv.store.ImageBigData(ref, key))
		},
		set: func(inv *invocation, ref, key string, r io.Reader) error {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			return inv.store.SetImageBigData(ref, key, b, manifestDigest)
		},
		size: func(inv *invocation, ref, key string) (int64, error) {
			return inv.store.ImageBigDataSize(ref, key)
		},
		digest: func(inv *invocation, ref, key string) (digest.Digest, error) {
			return inv.store.ImageBigDataDigest(ref, key)
		},
	},
	{
		kind: "container", noun: "a container",
		list: func(inv *invocation, ref string) ([]string, error) { return inv.store.ListContainerBigData(ref) },
		get: func(inv *invocation, ref, key string) (io.ReadCloser, error) {
			return bytesReader(inv.store.ContainerBigData(ref, key))
		},
		set: func(inv *invocation, ref, key string, r io.Reader) error {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			return inv.store.SetContainerBigData(ref, key, b)
		},
		size: func(inv *invocation, ref, key string) (int64, error) {
			return inv.store.ContainerBigDataSize(ref, key)
		},
		digest: func(inv *invocation, ref, key string) (digest.Digest, error) {
			return inv.store.ContainerBigDataDigest(ref, key)
		},
	},
}

// init registers, per kind K, list-K-data, get-K-data, set-K-data and (images and
// containers) get-K-data-size and get-K-data-digest, each also spelled without dashes.
func init() {
	for _, bd := range bigDataKinds {
		bd := bd
		ref := bd.kind + "NameOrID"
		alias := func(parts ...string) []string {
			dashed, plain := "", ""
			for i, p := range parts {
				if i > 0 {
					dashed += "-"
				}
				dashed += p
				plain += p
			}
			return []string{dashed, plain}
		}
		register(
			&command{
				names:       alias("list", bd.kind, "data"),
				optionsHelp: "[options [...]] " + ref,
				usage:       "List data items that are attached to " + bd.noun,
				minArgs:     1,
				maxArgs:     1,
				action:      bd.listAction,
				addFlags:    addJSON,
			},
			&command{
				names:       alias("get", bd.kind, "data"),
				optionsHelp: "[options [...]] " + ref + " dataName",
				usage:       "Get data that is attached to " + bd.noun,
				minArgs:     2,
				maxArgs:     2,
				action:      bd.getAction,
				addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
					fs.StringVarP(&f.file, "file", "f", "", "Write data to file")
				},
			},
			&command{
				names:       alias("set", bd.kind, "data"),
				optionsHelp: "[options [...]] " + ref + " dataName",
				usage:       "Set data that is attached to " + bd.noun,
				minArgs:     2,
				maxArgs:     2,
				action:      bd.setAction,
				addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
					fs.StringVarP(&f.file, "file", "f", "", "Read data from file")
				},
			},
		)
		if bd.size == nil {
			continue
		}
		register(
			&command{
				names:       alias("get", bd.kind, "data", "size"),
				optionsHelp: "[options [...]] " + ref + " dataName",
				usage:       "Get size of data that is attached to " + bd.noun,
				minArgs:     2,
				maxArgs:     2,
				action:      bd.sizeAction,
			},
			&command{
				names:       alias("get", bd.kind, "data", "digest"),
				optionsHelp: "[options [...]] " + ref + " dataName",
				usage:       "Get digest of data that is attached to " + bd.noun,
				minArgs:     2,
				maxArgs:     2,
				action:      bd.digestAction,
			},
		)
	}
}

func (bd bigData) listAction(inv *invocation, args []string) (int, error) {
	return inv.printList(bd.list(inv, args[0]))
}

// getAction copies the item's bytes, unchanged, to stdout or to the -f file.
func (bd bigData) getAction(inv *invocation, args []string) (int, error) {
	data, err := bd.get(inv, args[0], args[1])
	if err != nil {
		return 1, err
	}
	defer data.Close()
	if inv.flags.file == "" {
		if _, err := io.Copy(inv.stdout, data); err != nil {
			return 1, err
		}
		return 0, nil
	}
	f, err := os.Create(inv.flags.file)
	if err != nil {
		return 1, err
	}
	_, err = io.Copy(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

// setAction stores the bytes of the -f file, or of stdin.
func (bd bigData) setAction(inv *invocation, args []string) (int, error) {
	in, err := inv.input()
	if err != nil {
		return 1, err
	}
	defer in.Close()
	if err := bd.set(inv, args[0], args[1], in); err != nil {
		return 1, err
	}
	return 0, nil
}

func (bd bigData) sizeAction(inv *invocation, args []string) (int, error) {
	size, err := bd.size(inv, args[0], args[1])
	if err != nil {
		return 1, err
	}
	inv.printf("%d\n", size)
	return 0, nil
}

func (bd bigData) digestAction(inv *invocation, args []string) (int, error) {
	d, err := bd.digest(inv, args[0], args[1])
	if err != nil {
		return 1, err
	}
	if err := d.Validate(); err != nil {
		return 1, err
	}
	inv.printf("%s\n", d.String())
	return 0, nil
}
