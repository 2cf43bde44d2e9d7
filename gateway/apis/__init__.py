"""Other APIs clients speak, over the one pipeline: Anthropic's Messages, OpenAI's Responses.

Each module holds pure converters: the endpoint's request to our chat request, our completion
to the endpoint's response, our chunk stream to the endpoint's event stream, and our errors to
the endpoint's error shape. The HTTP routes in `gateway.server` run them around the pipeline.
"""
