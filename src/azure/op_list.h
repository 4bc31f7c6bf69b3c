/* The Azure clients' lists of operations in flight: a doubly linked list through each op's
 * prev and next, its head a field of the client (Blob, Queue and Key Vault ops alike). */
#ifndef SKY_AZURE_OP_LIST_H
#define SKY_AZURE_OP_LIST_H

/* Put @p op (prev and next NULL) first in the list at @p head (an lvalue). */
#define SKY__OP_LIST_PUSH(head, op)                                                                \
    do {                                                                                           \
        (op)->next = (head);                                                                       \
        if (head)                                                                                  \
            (head)->prev = (op);                                                                   \
        (head) = (op);                                                                             \
    } while (0)

/* Take @p op out of the list at @p head (its prev and next are left as they were). */
#define SKY__OP_LIST_REMOVE(head, op)                                                              \
    do {                                                                                           \
        if ((op)->prev)                                                                            \
            (op)->prev->next = (op)->next;                                                         \
        else                                                                                       \
            (head) = (op)->next;                                                                   \
        if ((op)->next)                                                                            \
            (op)->next->prev = (op)->prev;                                                         \
    } while (0)

#endif
