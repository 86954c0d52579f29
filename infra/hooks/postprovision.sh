#!/bin/sh
# azd's postprovision hook: grant the Graph app roles, then deploy the code.
# azd exports the Bicep outputs (AZURE_FUNCTION_APP_NAME, ...) and
# AZURE_RESOURCE_GROUP into the environment. Both steps are idempotent, so
# `azd provision` (or `make deploy`) again is also how to update.
set -eu
cd "$(dirname "$0")/../.."

photos=""
if [ "${GRAPH_PHOTOS:-false}" = "true" ]; then
	photos="--photos"
fi
# shellcheck disable=SC2086 # $photos is one flag or nothing
./infra/hooks/grant-graph-roles.sh "$MANAGED_IDENTITY_PRINCIPAL_ID" $photos

./infra/hooks/deploy-package.sh "$AZURE_RESOURCE_GROUP" "$AZURE_FUNCTION_APP_NAME"

echo "api: $API_BASE_URL"
echo "state storage account: $STATE_STORAGE_ACCOUNT (run logs in container $LOG_CONTAINER)"
echo "queue: $SERVICE_BUS_QUEUE on $SERVICE_BUS_NAMESPACE"
