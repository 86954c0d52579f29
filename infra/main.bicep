// entrasync in a tenant's own subscription: one resource group holding a Flex
// Consumption function app (Linux, the Go custom handler), its host storage
// with the deployment container, the state storage (tables and run logs), a
// Service Bus queue for the sync's work items, and Application Insights on a
// Log Analytics workspace.
//
// Every connection is identity-based: the app's user-assigned managed
// identity holds one role per resource it uses, scoped to that resource, and
// no app setting holds a key, a connection string or a secret. Shared-key
// access is off on both storage accounts and local (SAS) auth is off on
// Service Bus and Application Insights, so a leaked key would not work either.
//
// Microsoft Graph permissions are app roles on the Graph service principal,
// which Bicep cannot grant portably: infra/hooks/grant-graph-roles.sh does it
// (azd runs it after provisioning). See docs/deploy.md.
//
// internal/deploycheck reads this file in the tests: keep resources at the top
// level (children with `parent:`), app settings as one object literal, and
// role assignments as `Microsoft.Authorization/roleAssignments` resources with
// `scope:` and a `roles.<name>` definition. Resource types, API versions and
// property names are checked against Azure's published type definitions
// (internal/deploycheck/testdata/types).

targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it seeds the resource names.')
param environmentName string

@description('Region of every resource; Flex Consumption must be available there.')
param location string = resourceGroup().location

@minValue(1)
@maxValue(3650)
@description('Days a run log is kept in the sync-logs container before the lifecycle rule deletes it.')
param logRetentionDays int = 90

@description('NCRONTAB (6 fields) of the SyncTimer function: how often the sync schedule is checked.')
param syncTimerSchedule string = '0 */5 * * * *'

@minValue(1)
@maxValue(2000)
@description('Max delivery count of the sync-work queue; the handler reads the same number (SYNC_MAX_DELIVERIES).')
param maxDeliveries int = 10

@description('Prefix of the state tables (TABLE_PREFIX).')
param tablePrefix string = 'entrasync'

@allowed([
  'debug'
  'info'
  'warn'
  'error'
])
param logLevel string = 'info'

@description('Comma-separated SHA-256 (hex) of the API keys granting the admin role. Hashes only, never keys.')
param adminKeySha256 string = ''

@description('Comma-separated SHA-256 (hex) of the API keys granting the support role.')
param supportKeySha256 string = ''

@description('Application (client) id of an existing Entra app registration for the API (App Service Authentication), with the app roles EntraSync.Admin and EntraSync.Support. Empty: no Easy Auth, API keys only.')
param authClientId string = ''

@description('Tenant of that app registration.')
param authTenantId string = tenant().tenantId

@description('Whether photos are synced; only the Graph grant script reads it (ProfilePhoto.Read.All).')
param graphPhotos bool = false

@description('Upper bound of Flex Consumption instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  app: 'entrasync'
}
var functionAppName = 'func-entrasync-${token}'
var deploymentContainerName = 'app-package'
// The names the code and functions/*/function.json use: LOG_CONTAINER's
// default, the SyncWorker trigger's queue and connection.
var logContainerName = 'sync-logs'
// PHOTO_CONTAINER's default: users' photos (photo sync), kept apart from the
// logs and outside the logs' lifecycle rule.
var photoContainerName = 'photos'
var queueName = 'sync-work'
// Logical tables of internal/dirsync (engine.go, Table* constants) in the
// CamelCase internal/table gives them after TABLE_PREFIX. The handler creates
// a missing table itself; declaring them makes the deployment complete and
// lets removing the resource group be the whole uninstall.
var stateTables = [
  'Users'
  'Emails'
  'Members'
  'Groups'
  'Runs'
  'Pages'
  'Deletions'
  'State'
  'Settings'
  'Audit'
]

// Built-in role definition ids (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// ---- Identity

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: 'id-entrasync-${token}'
  location: location
  tags: tags
}

// ---- Monitoring

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-entrasync-${token}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-entrasync-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    // Telemetry only with an Entra token (APPLICATIONINSIGHTS_AUTHENTICATION_STRING),
    // so the instrumentation key in the connection string grants nothing.
    DisableLocalAuth: true
  }
}

// ---- Host storage: AzureWebJobsStorage (timer leases, host state) and the
// deployment container Flex Consumption runs the package from.

resource hostStorage 'Microsoft.Storage/storageAccounts@2025-01-01' = {
  name: 'stfn${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource hostBlobs 'Microsoft.Storage/storageAccounts/blobServices@2025-01-01' = {
  parent: hostStorage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = {
  parent: hostBlobs
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// ---- State storage: the directory and sync state (tables) and the run logs
// (blobs), the account a support engineer opens in Storage Explorer.

resource stateStorage 'Microsoft.Storage/storageAccounts@2025-01-01' = {
  name: 'stes${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource stateTableService 'Microsoft.Storage/storageAccounts/tableServices@2025-01-01' = {
  parent: stateStorage
  name: 'default'
}

resource stateTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-01-01' = [for t in stateTables: {
  parent: stateTableService
  name: '${tablePrefix}${t}'
}]

resource stateBlobs 'Microsoft.Storage/storageAccounts/blobServices@2025-01-01' = {
  parent: stateStorage
  name: 'default'
}

resource logContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = {
  parent: stateBlobs
  name: logContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource photoContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = {
  parent: stateBlobs
  name: photoContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Run logs are append blobs named sync-logs/<yyyy>/<mm>/<dd>/<run>.jsonl;
// they are never modified after their run, so age since modification is age
// since the run.
resource logRetention 'Microsoft.Storage/storageAccounts/managementPolicies@2025-01-01' = {
  parent: stateStorage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-old-run-logs'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'appendBlob'
                'blockBlob'
              ]
              prefixMatch: [
                '${logContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: logRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    logContainer
  ]
}

// ---- Service Bus: the sync's work items

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: 'sb-entrasync-${token}'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

// As the code and host.json expect: a work item is idempotent and keyed by
// its MessageId, so duplicate detection drops a re-sent one (10 minutes, as
// the local host); after maxDeliveries the item dead-letters and the handler,
// which knows the same count, fails its run with the reason on the last try;
// the lock is Service Bus's 1 minute default, renewed by the host up to
// maxAutoLockRenewalDuration (5 min, host.json) within functionTimeout (10 min).
resource workQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: serviceBus
  name: queueName
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: maxDeliveries
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    defaultMessageTimeToLive: 'P1D'
    enablePartitioning: false
  }
}

// ---- The function app

resource plan 'Microsoft.Web/serverfarms@2024-11-01' = {
  name: 'plan-entrasync-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-11-01' = {
  name: functionAppName
  location: location
  tags: union(tags, {
    'azd-service-name': 'entrasync'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // A custom handler on Flex Consumption: runtime "custom" version "1.0"
      // (Flex takes the runtime here, not from FUNCTIONS_WORKER_RUNTIME);
      // host.json names the executable, a linux/amd64 static binary.
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

// Every app setting of the deployment. handler/config.go owns the names the
// handler reads (README.md "Configuration"); the others are the Functions
// host's identity-based connection forms.
resource appSettings 'Microsoft.Web/sites/config@2024-11-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: {
    AzureWebJobsStorage__accountName: hostStorage.name
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identity.properties.clientId
    // Not a secret: with DisableLocalAuth the key in it cannot send
    // telemetry; the identity in the authentication string does.
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
    SYNC_TIMER_SCHEDULE: syncTimerSchedule
    STORAGE_ACCOUNT_NAME: stateStorage.name
    STORAGE_MANAGED_IDENTITY_CLIENT_ID: identity.properties.clientId
    TABLE_PREFIX: tablePrefix
    LOG_CONTAINER: logContainerName
    PHOTO_CONTAINER: photoContainerName
    ServiceBusConnection__fullyQualifiedNamespace: '${serviceBus.name}.servicebus.windows.net'
    ServiceBusConnection__credential: 'managedidentity'
    ServiceBusConnection__clientId: identity.properties.clientId
    SYNC_MAX_DELIVERIES: string(maxDeliveries)
    GRAPH_USE_MANAGED_IDENTITY: 'true'
    GRAPH_MANAGED_IDENTITY_CLIENT_ID: identity.properties.clientId
    ADMIN_KEY_SHA256: adminKeySha256
    SUPPORT_KEY_SHA256: supportKeySha256
    LOG_LEVEL: logLevel
  }
}

// App Service Authentication for the API: it validates Entra tokens for the
// existing app registration and passes the caller's app roles to the handler
// in x-ms-client-principal. Unauthenticated requests go through to the API,
// which refuses them on every route but /api/health unless they carry an API
// key (docs/architecture.md, "The API's authentication"); so no client secret
// is needed here, only token validation.
resource authSettings 'Microsoft.Web/sites/config@2024-11-01' = if (!empty(authClientId)) {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    httpSettings: {
      requireHttps: true
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: 'https://sts.windows.net/${authTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${authClientId}'
            authClientId
          ]
        }
      }
    }
  }
}

// ---- Role assignments: what the code uses, on the resource it uses, nothing wider.

// The Functions host: AzureWebJobsStorage (blob leases for the timer, host
// state) and reading the package from the deployment container.
resource hostStorageBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, identity.id, roles.storageBlobDataOwner)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The handler: state tables (internal/table).
resource stateTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(stateStorage.id, identity.id, roles.storageTableDataContributor)
  scope: stateStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The handler: run logs (internal/blob). On the account, not the container:
// the log download links are signed with a user delegation key, which is
// requested from the account's blob service.
resource stateBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(stateStorage.id, identity.id, roles.storageBlobDataContributor)
  scope: stateStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The handler sends work items (internal/servicebus).
resource queueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workQueue.id, identity.id, roles.serviceBusDataSender)
  scope: workQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataSender)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The host's SyncWorker trigger receives them.
resource queueReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workQueue.id, identity.id, roles.serviceBusDataReceiver)
  scope: workQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The host sends telemetry with the identity (local auth is off).
resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---- Outputs (azd stores them in the environment; the hooks read them)

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_APP_NAME string = functionApp.name
output API_BASE_URL string = 'https://${functionApp.properties.defaultHostName}/api'
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.properties.principalId
output MANAGED_IDENTITY_CLIENT_ID string = identity.properties.clientId
output STATE_STORAGE_ACCOUNT string = stateStorage.name
output LOG_CONTAINER string = logContainerName
output SERVICE_BUS_NAMESPACE string = '${serviceBus.name}.servicebus.windows.net'
output SERVICE_BUS_QUEUE string = queueName
output GRAPH_PHOTOS bool = graphPhotos
output GRAPH_GRANT_COMMAND string = 'infra/hooks/grant-graph-roles.sh ${identity.properties.principalId}${graphPhotos ? ' --photos' : ''}'
