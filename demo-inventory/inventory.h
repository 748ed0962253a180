/* inventory.h -- the demo's handlers (demo-inventory/routes.c). */
#ifndef LOCKSERVICE_INVENTORY_H
#define LOCKSERVICE_INVENTORY_H

struct request;

void handle_inventory_put(struct request *req);
void handle_inventory_get(struct request *req);
void handle_inventory_purchase(struct request *req);

#endif
