/* openapi.c -- GET /openapi.yaml: the contract, embedded at build time. */
#include "handlers.h"

#include "embedded.h"
#include "http/http.h"

void handle_openapi(struct request *req)
{
    reply_raw(req, 200, "application/yaml", embedded_openapi_yaml,
              embedded_openapi_yaml_len, false);
}
