"""Everything the bridge needs of Finance and Operations: readers, capture (business
events, the snapshot-diff poller), the sink and registration. F&O field names stay in this
package."""
