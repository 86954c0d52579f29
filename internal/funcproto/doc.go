// Package funcproto speaks the Azure Functions custom-handler wire protocol on
// the handler's side: it decodes what the Functions host POSTs to the handler
// and encodes what the handler answers.
//
// For every trigger that is not a proxied HTTP request, the host POSTs
// /{FunctionName} with a JSON body {"Data": {...}, "Metadata": {...}} and the
// header X-Azure-Functions-InvocationId. Data holds one entry per input
// binding (the trigger's value under its binding name); Metadata holds the
// trigger's binding data plus "sys" (MethodName, UtcNow, RandGuid). The
// handler answers {"Outputs": {...}, "Logs": [...], "ReturnValue": ...}; a
// non-2xx answer fails the invocation (a Service Bus message is then
// abandoned and redelivered).
//
// The host serializes values with Newtonsoft.Json in a way that surprises:
// strings and numbers that are not JSON objects are serialized twice, so a
// Service Bus message body "hello" arrives as the JSON string "\"hello\"",
// DeliveryCount 1 as "1" and MessageId abc as "\"abc\"", while DateTime values
// lose their zone and sub-second digits. The decoders here accept those forms
// and the plain ones (a JSON object body, numbers as numbers), so the same
// code reads payloads from the real host, from Core Tools and from
// internal/devhost. testdata/ holds payloads in the shapes captured from real
// hosts; see the fixtures' comments in decode_test.go for their sources.
//
// With enableProxyingHttpRequest (or the older enableForwardingHttpRequest)
// in host.json, HTTP-only functions receive the original request at its
// original path (/api/...) instead of a payload; Router.Proxy serves those.
//
// Router ties it together: register each function with Timer, Queue or HTTP,
// mount the Router as the handler's http.Handler, and listen on ListenAddr.
// Each invocation gets an *Invocation whose Logger is scoped with the function
// name and invocation id; what it logs at Info or above also goes back to the
// host in "Logs".
package funcproto
