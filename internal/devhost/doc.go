// Package devhost is a small local Azure Functions host for a custom-handler
// app, for development and tests where the official Core Tools cannot run.
//
// It reads host.json (customHandler, enableProxyingHttpRequest or
// enableForwardingHttpRequest, extensions.http.routePrefix,
// extensions.serviceBus, functionTimeout) and every function.json (in
// functions/<Name>/ as the repository keeps them, or <Name>/ beside host.json
// as deployed), loads Values from local.settings.json (else
// local.settings.sample.json) and resolves %SETTING% references in bindings.
//
// It starts the handler with those Values, FUNCTIONS_CUSTOMHANDLER_PORT (a
// free port) and ENTRASYNC_DEVHOST_URL in its environment, waits until it
// answers HTTP, and restarts it when it dies. Then it plays the host:
//
//   - HTTP triggers on /api/<route>, with ASP.NET-style route matching
//     (literal beats {param} beats {*catchall}), method filters and function
//     keys (x-functions-key header or code query parameter; 401 otherwise).
//     HTTP-only functions are proxied as the original request when host.json
//     enables proxying; the others get the payload form.
//   - Timer triggers on six-field NCRONTAB schedules, with runOnStartup,
//     IsPastDue and ScheduleStatus.
//   - Service Bus triggers fed by an in-process queue with Service Bus
//     semantics: peek-lock, abandon and redelivery with DeliveryCount+1,
//     dead-lettering after MaxDeliveryCount, scheduled messages, duplicate
//     detection on MessageId and maxConcurrentCalls consumers. The handler
//     sends messages with POST /_devhost/queues/{queue}/messages.
//   - The admin API's POST /admin/functions/{name} (master key) to fire a
//     timer or queue function now.
//
// Payloads are built as the real host builds them, serialization quirks
// included (see payload.go), so what works here works there.
package devhost
