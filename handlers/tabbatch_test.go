package handlers_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// TestTabListsAnyNumberOfContacts opens the tab of leads with 0, 1, 3 and
// 60 linked contacts. Each view is one batch of at most five commands,
// none of which fails, whatever the number of links; every link is
// listed, the first page of names (50) by name and the rest by number,
// which the page says.
func TestTabListsAnyNumberOfContacts(t *testing.T) {
	e := newInstalledEnv(t)
	for _, n := range []int{0, 1, 3, 60} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			leadID := 7000 + n
			e.portal.AddLead(simulator.Lead{ID: leadID, Title: fmt.Sprintf("Lead with %d", n)})
			for i := range n {
				id := 70000 + 100*n + i
				e.portal.AddContact(simulator.Contact{ID: id, Name: "Name", LastName: fmt.Sprintf("N%03d", i)})
				require.NoError(t, e.portal.LinkContact(leadID, id, 10*(i+1), i == 0))
			}

			mark := len(e.portal.Calls())
			p := e.openTab(2, leadID, "en")
			require.Equal(t, http.StatusOK, p.status, p.body)

			var batches, sub int
			for _, c := range e.portal.Calls()[mark:] {
				switch {
				case c.Method == "batch":
					batches++
				case c.Batch:
					sub++
					assert.Equal(t, http.StatusOK, c.HTTPStatus, "%s failed: %s %s", c.Method, c.Error, c.ErrorDescription)
				}
			}
			assert.Equal(t, 1, batches, "one round trip")
			assert.LessOrEqual(t, sub, 5, "at most five commands")

			assert.Contains(t, p.doc.Find("h1, .lead-title").Text()+p.body, fmt.Sprintf("Lead with %d", n))
			links := p.doc.Find("#contacts li a.contact-link")
			require.Equal(t, n, links.Length())
			named := min(n, 50)
			for i := range n {
				text := links.Eq(i).Text()
				if i < named {
					assert.Contains(t, text, fmt.Sprintf("Name N%03d", i))
				} else {
					assert.Contains(t, text, fmt.Sprintf("Contact #%d", 70000+100*n+i))
				}
				href, _ := links.Eq(i).Attr("href")
				assert.Contains(t, href, fmt.Sprintf("/crm/contact/details/%d/", 70000+100*n+i))
			}
			note := p.doc.Find("p.more").Text()
			if n > 50 {
				assert.Contains(t, note, fmt.Sprintf("%d contacts are shown by number only", n-50))
			} else {
				assert.Empty(t, note)
			}
			if n == 0 {
				assert.Contains(t, p.body, "No contacts are linked to this lead.")
				_, disabled := p.doc.Find("button#remove").Attr("disabled")
				assert.True(t, disabled, "nothing to unlink")
			}
		})
	}
}
