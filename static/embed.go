// Package static embeds the CSS, JS and icon of the pages and serves them under
// content-hashed names, so browsers may cache them for a year and a new
// release is picked up at once.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"path"
	"strings"
)

//go:embed *.css *.js *.svg
var files embed.FS

// Asset is one embedded file.
type Asset struct {
	Name        string // hashed name, e.g. app.3f2a1b9c.css
	ContentType string
	Body        []byte
}

// Assets maps original names (app.css) to hashed assets.
type Assets struct {
	byOrig   map[string]*Asset
	byHashed map[string]*Asset
}

// Load hashes every embedded file.
func Load() (*Assets, error) {
	a := &Assets{byOrig: map[string]*Asset{}, byHashed: map[string]*Asset{}}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ext := path.Ext(p)
		asset := &Asset{
			Name:        strings.TrimSuffix(p, ext) + "." + hex.EncodeToString(sum[:5]) + ext,
			ContentType: contentType(ext),
			Body:        body,
		}
		a.byOrig[p] = asset
		a.byHashed[asset.Name] = asset
		return nil
	})
	return a, err
}

// Path returns the URL path of an asset by its original name, or "" when
// there is no such asset.
func (a *Assets) Path(name string) string {
	if x, ok := a.byOrig[name]; ok {
		return "/static/" + x.Name
	}
	return ""
}

// Lookup finds an asset by its hashed name.
func (a *Assets) Lookup(hashed string) (*Asset, bool) {
	x, ok := a.byHashed[hashed]
	return x, ok
}

// Size returns the size in bytes of an asset by original name.
func (a *Assets) Size(name string) int {
	if x, ok := a.byOrig[name]; ok {
		return len(x.Body)
	}
	return 0
}

func contentType(ext string) string {
	switch ext {
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	return "application/octet-stream"
}
