package core

import (
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pluggable-storage/storage/archive"
)

// IDMap is one range of a user-namespace ID mapping (keys of the established pkg/idtools.IDMap).
type IDMap struct {
	ContainerID int `json:"container_id"`
	HostID      int `json:"host_id"`
	Size        int `json:"size"`
}

// Layer is one record of layers.json (SPEC-disk §1.2). MountPoint and MountCount come from
// mountpoints.json; ReadOnly is set for layers of read-only stores.
type Layer struct {
	ID                 string                 `json:"id"`
	Names              []string               `json:"names,omitempty"`
	Parent             string                 `json:"parent,omitempty"`
	Metadata           string                 `json:"metadata,omitempty"`
	MountLabel         string                 `json:"mountlabel,omitempty"`
	MountPoint         string                 `json:"-"`
	MountCount         int                    `json:"-"`
	Created            time.Time              `json:"created,omitempty"`
	CompressedDigest   digest.Digest          `json:"compressed-diff-digest,omitempty"`
	CompressedSize     int64                  `json:"compressed-size,omitempty"`
	UncompressedDigest digest.Digest          `json:"diff-digest,omitempty"`
	TOCDigest          digest.Digest          `json:"toc-digest,omitempty"`
	UncompressedSize   int64                  `json:"diff-size,omitempty"`
	CompressionType    archive.Compression    `json:"compression,omitempty"`
	UIDs               []uint32               `json:"uidset,omitempty"`
	GIDs               []uint32               `json:"gidset,omitempty"`
	Flags              map[string]interface{} `json:"flags,omitempty"`
	UIDMap             []IDMap                `json:"uidmap,omitempty"`
	GIDMap             []IDMap                `json:"gidmap,omitempty"`
	ReadOnly           bool                   `json:"-"`
	BigDataNames       []string               `json:"big-data-names,omitempty"`

	loc   int    // which layers file holds it (locStable, locVolatile, locSplit)
	store string // root of the read-only image store holding it; "" = this store
}

// Image is one record of images.json (SPEC-disk §1.3). Digests is computed: Digest plus the
// digest of every big-data item whose key starts with "manifest".
type Image struct {
	ID              string                   `json:"id"`
	Digest          digest.Digest            `json:"digest,omitempty"`
	Digests         []digest.Digest          `json:"-"`
	Names           []string                 `json:"names,omitempty"`
	NamesHistory    []string                 `json:"names-history,omitempty"`
	TopLayer        string                   `json:"layer,omitempty"`
	MappedTopLayers []string                 `json:"mapped-layers,omitempty"`
	Metadata        string                   `json:"metadata,omitempty"`
	BigDataNames    []string                 `json:"big-data-names,omitempty"`
	BigDataSizes    map[string]int64         `json:"big-data-sizes,omitempty"`
	BigDataDigests  map[string]digest.Digest `json:"big-data-digests,omitempty"`
	Created         time.Time                `json:"created,omitempty"`
	ReadOnly        bool                     `json:"-"`
	Flags           map[string]interface{}   `json:"flags,omitempty"`

	loc   int    // which images file holds it (locStable, locSplit)
	store string // root of the read-only image store holding it; "" = this store
}

// Container is one record of containers.json (SPEC-disk §1.4).
type Container struct {
	ID             string                   `json:"id"`
	Names          []string                 `json:"names,omitempty"`
	ImageID        string                   `json:"image"`
	LayerID        string                   `json:"layer"`
	Metadata       string                   `json:"metadata,omitempty"`
	BigDataNames   []string                 `json:"big-data-names,omitempty"`
	BigDataSizes   map[string]int64         `json:"big-data-sizes,omitempty"`
	BigDataDigests map[string]digest.Digest `json:"big-data-digests,omitempty"`
	Created        time.Time                `json:"created,omitempty"`
	UIDMap         []IDMap                  `json:"uidmap,omitempty"`
	GIDMap         []IDMap                  `json:"gidmap,omitempty"`
	Flags          map[string]interface{}   `json:"flags,omitempty"`

	loc int // which containers file holds it (locStable, locVolatile)
}

func (l *Layer) recordID() string          { return l.ID }
func (l *Layer) recordNames() []string     { return l.Names }
func (l *Layer) setRecordNames(n []string) { l.Names = n }
func (l *Layer) location() int             { return l.loc }
func (l *Layer) setLocation(loc int)       { l.loc = loc }

func (i *Image) recordID() string          { return i.ID }
func (i *Image) recordNames() []string     { return i.Names }
func (i *Image) setRecordNames(n []string) { i.Names = n }
func (i *Image) location() int             { return i.loc }
func (i *Image) setLocation(loc int)       { i.loc = loc }

func (c *Container) recordID() string          { return c.ID }
func (c *Container) recordNames() []string     { return c.Names }
func (c *Container) setRecordNames(n []string) { c.Names = n }
func (c *Container) location() int             { return c.loc }
func (c *Container) setLocation(loc int)       { c.loc = loc }

// incomplete reports whether the layer is being created or deleted (SPEC-disk §3.1).
func (l *Layer) incomplete() bool {
	v, _ := l.Flags["incomplete"].(bool)
	return v
}

func (l *Layer) setIncomplete(v bool) {
	if v {
		if l.Flags == nil {
			l.Flags = map[string]interface{}{}
		}
		l.Flags["incomplete"] = true
		return
	}
	delete(l.Flags, "incomplete")
	if len(l.Flags) == 0 {
		l.Flags = nil
	}
}

// copyLayer returns a copy that shares no slices or maps with l.
func copyLayer(l *Layer) Layer {
	c := *l
	c.Names = cloneStrings(l.Names)
	c.UIDs = append([]uint32(nil), l.UIDs...)
	c.GIDs = append([]uint32(nil), l.GIDs...)
	if l.UIDs == nil {
		c.UIDs = nil
	}
	if l.GIDs == nil {
		c.GIDs = nil
	}
	c.Flags = cloneFlags(l.Flags)
	c.UIDMap = append([]IDMap(nil), l.UIDMap...)
	c.GIDMap = append([]IDMap(nil), l.GIDMap...)
	c.BigDataNames = cloneStrings(l.BigDataNames)
	return c
}

func copyImage(i *Image) Image {
	c := *i
	c.Digests = append([]digest.Digest(nil), i.Digests...)
	c.Names = cloneStrings(i.Names)
	c.NamesHistory = cloneStrings(i.NamesHistory)
	c.MappedTopLayers = cloneStrings(i.MappedTopLayers)
	c.BigDataNames = cloneStrings(i.BigDataNames)
	c.BigDataSizes = cloneMap(i.BigDataSizes)
	c.BigDataDigests = cloneMap(i.BigDataDigests)
	c.Flags = cloneFlags(i.Flags)
	return c
}

func copyContainer(ct *Container) Container {
	c := *ct
	c.Names = cloneStrings(ct.Names)
	c.BigDataNames = cloneStrings(ct.BigDataNames)
	c.BigDataSizes = cloneMap(ct.BigDataSizes)
	c.BigDataDigests = cloneMap(ct.BigDataDigests)
	c.UIDMap = append([]IDMap(nil), ct.UIDMap...)
	c.GIDMap = append([]IDMap(nil), ct.GIDMap...)
	c.Flags = cloneFlags(ct.Flags)
	return c
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func cloneFlags(m map[string]interface{}) map[string]interface{} { return cloneMap(m) }
