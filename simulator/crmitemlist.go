package simulator

import (
	"cmp"
	"strings"
)

// itemListFilterable are the lead fields crm.item.list filters and orders
// by here, in the universal API's camelCase: those a bulk run's filter
// uses, and the id for keyset paging. Bitrix24 knows more; asking for one
// the simulator does not know is INVALID_ARG_VALUE, as crm-item-list.md
// says of a field "not allowed in filter".
var itemListFilterable = []string{"id", "title", "stageId", "sourceId", "assignedById",
	"createdTime", "updatedTime", "contactId"}

// mItemList is crm.item.list for leads (entityTypeId 1, crm-item-list.md):
// filter with the documented prefixes (>=, >, <=, <, @, !@, %, =%, !=, !),
// order by ASC/DESC, select of camelCase names or "*" (id always comes
// back), pages of 50 with total and next, and start=-1 for keyset paging
// without a count (settings/performance/huge-data.md). The answer is
// {"items":[...]}; contactIds, as in crm.item.get, lists every linked
// contact in the links' order. Leads the user may not read are left out
// (the docs: "will not be included in the final selection").
func (p *Portal) mItemList(c *callCtx) (result, *apiError) {
	if c.int("entityTypeId") != entityTypeLead {
		return result{}, apiErr(400, "NOT_FOUND", "SPA not found")
	}
	filter, _ := c.param("filter").(*omap)
	if filter != nil {
		for _, k := range filter.keys {
			field := strings.TrimLeft(k, "<>=!@%")
			if itemField(field) == "" {
				return result{}, apiErr(400, "INVALID_ARG_VALUE", "Invalid filter: field '"+field+"' is not allowed in filter")
			}
		}
	}
	order, _ := c.param("order").(*omap)
	if order != nil {
		for _, k := range order.keys {
			dir := strings.ToUpper(str(order.vals[k]))
			if itemField(k) == "" {
				return result{}, apiErr(400, "INVALID_ARG_VALUE", "Invalid order: field '"+k+"' is not allowed in order")
			}
			if dir != "ASC" && dir != "DESC" {
				return result{}, apiErr(400, "INVALID_ARG_VALUE",
					"Invalid order: allowed sort directions are ASC, DESC. But got '"+str(order.vals[k])+"' for field '"+k+"'")
			}
		}
	}
	// The classic list's filter and order read upper-case keys: each lead
	// is matched on an upper-cased view of its filterable fields.
	keyed := map[int]*leadRec{}
	var views []obj
	if c.user.canRead() {
		for _, rec := range p.leads {
			views = append(views, leadView(rec))
			keyed[rec.ID] = rec
		}
	}
	res, aerr := listResult(&callCtx{userID: c.userID, user: c.user, params: upperKeys(c.params)}, views)
	if aerr != nil {
		return res, aerr
	}
	sel := itemSelect(c.param("select"))
	items := []any{}
	for _, v := range res.value.([]any) {
		rec := keyed[phpInt(v.(obj).vals["ID"])]
		items = append(items, project(leadItem(rec), sel, "id"))
	}
	res.value = fields("items", items)
	return res, nil
}

// leadView is the filterable fields of leadItem, upper-cased, built
// without the rest: a list over thousands of leads renders only its page.
func leadView(rec *leadRec) obj {
	primary := 0
	for _, lc := range rec.contacts {
		if lc.Primary {
			primary = lc.ContactID
		}
	}
	return fields("ID", rec.ID, "TITLE", rec.Title, "STAGEID", rec.StatusID, "SOURCEID", cmp.Or(rec.SourceID, "WEB"),
		"ASSIGNEDBYID", max(rec.AssignedByID, 1), "CREATEDTIME", dateTime(rec.created),
		"UPDATEDTIME", dateTime(rec.modified), "CONTACTID", primary)
}

// itemField is the known camelCase name of a field named in any case, or "".
func itemField(name string) string {
	for _, f := range itemListFilterable {
		if strings.EqualFold(f, name) {
			return f
		}
	}
	return ""
}

// upperKeys is params with filter and order keys upper-cased after their
// operator prefix, as listResult reads them; start is kept.
func upperKeys(params *omap) *omap {
	out := newOmap()
	for _, k := range params.keys {
		v := params.vals[k]
		if m, ok := v.(*omap); ok && (strings.EqualFold(k, "filter") || strings.EqualFold(k, "order")) {
			u := newOmap()
			for _, mk := range m.keys {
				field := strings.TrimLeft(mk, "<>=!@%")
				u.Set(mk[:len(mk)-len(field)]+strings.ToUpper(field), m.vals[mk])
			}
			v = u
		}
		out.Set(strings.ToLower(k), v)
	}
	return out
}

// itemSelect reads select: names as given, or nil for everything.
func itemSelect(v any) []string {
	var out []string
	for _, e := range list(v) {
		s := strings.TrimSpace(str(e))
		if s == "*" {
			return nil
		}
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
