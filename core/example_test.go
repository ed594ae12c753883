package core_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pluggable-storage/storage/core"
)

// vfsPluginDir is where containers-storage-driver-vfs is installed (the tests build it there).
func vfsPluginDir() string { return os.Getenv("CORE_TEST_PLUGINS") }

// A library user: open a store, create a layer from a tar, an image on it and a container on
// the image, mount the container and read a file, then clean up.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "store-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	store, err := core.Open(ctx, core.Options{
		GraphRoot:  filepath.Join(dir, "graph"),
		RunRoot:    filepath.Join(dir, "run"),
		Driver:     "vfs",
		PluginDirs: []string{vfsPluginDir()},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close() // stops the driver plugin

	// A layer from a tar stream (it could as well be gzip, bzip2, xz or zstd compressed).
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	content := []byte("hello from a layer\n")
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(content))})
	tw.Write(content)
	tw.Close()
	layer, err := store.CreateLayer(ctx, core.LayerOptions{Names: []string{"base"}}, &layerTar)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("layer diff size:", layer.UncompressedSize)

	img, err := store.CreateImage(ctx, core.ImageOptions{TopLayer: layer.ID, Names: []string{"example:latest"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("image names:", img.Names)

	if _, err := store.CreateContainer(ctx, "example:latest", core.ContainerOptions{Names: []string{"demo"}}); err != nil {
		fmt.Println(err)
		return
	}
	mountpoint, err := store.Mount(ctx, "demo", core.MountOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	data, err := os.ReadFile(filepath.Join(mountpoint, "hello.txt"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(data))

	if _, err := store.Unmount(ctx, "demo", false); err != nil {
		fmt.Println(err)
		return
	}
	if err := store.DeleteContainer(ctx, "demo"); err != nil {
		fmt.Println(err)
		return
	}
	deleted, err := store.DeleteImage(ctx, "example:latest", true)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("layers deleted with the image:", len(deleted))
	if _, err := store.Shutdown(ctx, false); err != nil {
		fmt.Println(err)
	}
	// Output:
	// layer diff size: 2048
	// image names: [example:latest]
	// hello from a layer
	// layers deleted with the image: 1
}
