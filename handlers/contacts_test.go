package handlers

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
)

// TestContactViewsNameOnlyLinkedContacts: a names answer that holds
// contacts which are not linked (as a real portal might return for an
// empty "@ID" filter, which Bitrix24 does not document) names nobody else.
func TestContactViewsNameOnlyLinkedContacts(t *testing.T) {
	res := &bitrix24.BatchResult{Results: map[string]json.RawMessage{
		"names": json.RawMessage(`[{"ID":"951","NAME":"Grace","LAST_NAME":"Hopper"},{"ID":"952","NAME":"Edsger","LAST_NAME":"Dijkstra"}]`)},
		Total: map[string]int{"names": 2}}
	bundle, err := lang.Load()
	require.NoError(t, err)
	loc := bundle.For("en")
	views, unnamed := contactViews(loc, res, []leadItem{{ContactID: 951, Primary: true}, {ContactID: 953}}, "https://b24.example")
	require.Len(t, views, 2)
	assert.Equal(t, "Grace Hopper", views[0].Name)
	assert.Equal(t, "https://b24.example/crm/contact/details/951/", views[0].URL)
	assert.Equal(t, "Contact #953", views[1].Name, "a link without a name is listed by number")
	assert.Equal(t, 1, unnamed)

	empty := &bitrix24.BatchResult{Errors: map[string]*bitrix24.Error{"names": {Code: "ACCESS_DENIED", Description: "Access denied"}}}
	views, unnamed = contactViews(loc, empty, []leadItem{{ContactID: 951}}, "")
	require.Len(t, views, 1, "names that cannot be read leave the links")
	assert.Equal(t, 1, unnamed)
}
