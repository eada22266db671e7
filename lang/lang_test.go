package lang

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEveryCatalogueHasEveryKey(t *testing.T) {
	b, err := Load()
	require.NoError(t, err)
	want := b.Keys(Fallback)
	require.NotEmpty(t, want)
	for _, code := range b.Codes() {
		assert.ElementsMatch(t, want, b.Keys(code), "catalogue %s must define exactly the English keys", code)
	}
}

func TestFallbackAndPlurals(t *testing.T) {
	b, err := Load()
	require.NoError(t, err)
	en := b.For("EN ")
	assert.Equal(t, "en", en.Code())
	assert.Equal(t, "1 linked contact", en.N("tab.count", 1))
	assert.Equal(t, "3 linked contacts", en.N("tab.count", 3))
	assert.Equal(t, `3 contacts removed from lead “Big deal”.`, en.N("result.success", 3, "Title", "Big deal"))
	unknown := b.For("xx")
	assert.Equal(t, "en", unknown.Code())
	assert.Equal(t, "ltr", unknown.Dir())
	assert.Equal(t, "missing.key", en.T("missing.key"))
}
