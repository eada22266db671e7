package simulator

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenAppFramesTheApplicationURL(t *testing.T) {
	s := newTestSim(t, func(o *Options) {
		o.App.AppURL = "https://app.example.com/app"
		o.App.Name = "Contacts cleanup"
	})
	p := newTestPortal(t, s)
	_, err := p.OpenApp(SeedAdmin, "de")
	require.Error(t, err, "no app before the install")

	mustInstall(t, p)
	f, err := p.OpenApp(SeedSales, "de")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(f.URL, "https://app.example.com/app?"))
	assert.Equal(t, "de", f.Query.Get("LANG"))
	assert.Equal(t, "DEFAULT", f.Form.Get("PLACEMENT"))
	assert.NotContains(t, f.Form, "PLACEMENT_OPTIONS", "sent only when there are options")
	assert.NotEmpty(t, f.Form.Get("AUTH_ID"))
	assert.Equal(t, p.ApplicationToken(), f.Form.Get("APPLICATION_TOKEN"))

	// The portal's pages list the app in the left menu and frame it.
	get := func(path string) string {
		resp, err := http.Get(p.URL() + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		return string(b)
	}
	assert.Contains(t, get("/"), `id="menu-app"`)
	page := get("/marketplace/app/?user=2&lang=ru")
	assert.Contains(t, page, `action="https://app.example.com/app?`)
	assert.Contains(t, page, `name="PLACEMENT" value="DEFAULT"`)
	assert.Contains(t, page, `id="slider"`, "history links open in the slider")
}

func TestNoAppMenuWithoutApplicationURL(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	mustInstall(t, p)
	resp, err := http.Get(p.URL() + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	assert.NotContains(t, string(b), `id="menu-app"`)
	_, err = p.OpenApp(SeedAdmin, "")
	assert.Error(t, err)
}
