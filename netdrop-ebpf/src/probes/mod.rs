//! One module per hook, named after it.
pub mod inet_sock_set_state;
pub mod kfree_skb;
pub mod kfree_skb_raw;
pub mod neigh_create;
pub mod neigh_timer_handler;
pub mod neigh_update;
pub mod tcp_conn_request;
