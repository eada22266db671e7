package simulator

import (
	"strconv"
)

// leadStageNames and leadSourceNames are the default English names of the
// portal's lead stages (ENTITY_ID STATUS) and sources (ENTITY_ID SOURCE).
var (
	leadStageNames = map[string]string{"NEW": "Unassigned", "IN_PROCESS": "In progress", "PROCESSED": "Processed",
		"CONVERTED": "Good lead", "JUNK": "Junk lead"}
	leadSourceNames = map[string]string{"CALL": "Call", "EMAIL": "E-mail", "WEB": "Website", "ADVERTISING": "Advertising",
		"PARTNER": "Existing client", "RECOMMENDATION": "By recommendation", "TRADE_SHOW": "Show/Exhibition", "OTHER": "Other"}
)

// mStatusList is crm.status.list (crm-status-list.md): the reference
// items of the lead stages (STATUS) and sources (SOURCE), filtered and
// ordered like the classic lists (e.g. filter[ENTITY_ID]=STATUS,
// order[SORT]=ASC), with the documented record shape: numbers as
// strings, EXTRA only on stages (their semantics and colour), total and
// no paging (the lists are short). Any user may call it.
func (p *Portal) mStatusList(c *callCtx) (result, *apiError) {
	var recs []obj
	id := 100
	add := func(entity string, codes []string, names map[string]string) {
		for i, code := range codes {
			id++
			rec := fields("ID", strconv.Itoa(id), "ENTITY_ID", entity, "STATUS_ID", code, "NAME", names[code],
				"NAME_INIT", names[code], "SORT", strconv.Itoa(10*(i+1)), "SYSTEM", "Y", "CATEGORY_ID", nil)
			if entity == "STATUS" {
				semantic := map[string]string{"CONVERTED": "S", "JUNK": "F"}[code]
				word := map[string]string{"S": "success", "F": "failure", "": "process"}[semantic]
				rec.Set("COLOR", "#39A8EF").Set("SEMANTICS", nz(semantic)).Set("EXTRA", fields("SEMANTICS", word, "COLOR", "#39A8EF"))
			}
			recs = append(recs, rec)
		}
	}
	add("STATUS", leadStages, leadStageNames)
	add("SOURCE", leadSources, leadSourceNames)
	return listResult(c, recs)
}
