using System.CommandLine;
using SharpTune.AI;
using SharpTune.Cli.Infrastructure;
using SharpTune.Models;
using SharpTune.Pipelines;
using SharpTune.Serving;
using SharpTune.Training.Heads;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune serve</c>: an OpenAI-compatible HTTP server for a causal LM (and/or an encoder for embeddings).</summary>
public static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model")
        {
            Description = "Model folder to serve: a causal LM (chat and text completions) or an encoder (embeddings).",
            Required = true,
        };
        var adapter = new Option<string?>("--adapter") { Description = "LoRA adapter directory applied to the causal LM." };
        var host = new Option<string>("--host") { Description = "Address to listen on (loopback by default; 0.0.0.0 exposes the server).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one).", DefaultValueFactory = _ => 8000 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on /v1 requests (default: the SHARPTUNE_API_KEY variable, else none)." };
        var embeddingModel = new Option<string?>("--embedding-model") { Description = "Encoder folder (BERT, RoBERTa...) served on /v1/embeddings next to the causal LM." };
        var pooling = new Option<string>("--pooling") { Description = "Embedding pooling over tokens: mean or cls.", DefaultValueFactory = _ => "mean" };
        pooling.AcceptOnlyFromAmong("mean", "cls");
        var normalize = new Option<bool>("--normalize") { Description = "L2-normalise embeddings." };
        var modelId = new Option<string?>("--model-id") { Description = "Name clients use for the causal LM (default: its folder's name)." };
        var maxBatch = new Option<int>("--max-batch-size") { Description = "Sequences decoded together (1: one request at a time).", DefaultValueFactory = _ => 16 };
        var maxQueue = new Option<int>("--max-queue") { Description = "Requests waiting for a batch slot before the server answers 429.", DefaultValueFactory = _ => 64 };
        var maxTokens = new Option<int>("--max-tokens-limit") { Description = "Largest max_tokens a request may ask for (also the chat default).", DefaultValueFactory = _ => 2048 };
        var maxBody = new Option<long>("--max-body-bytes") { Description = "Largest request body accepted (413 beyond).", DefaultValueFactory = _ => 1 << 20 };

        var command = new Command("serve",
            "Serve a model over an OpenAI-compatible HTTP API: GET /v1/models, POST /v1/chat/completions and /v1/completions " +
            "(streamed as server-sent events with \"stream\": true), POST /v1/embeddings, GET /health. Concurrent requests are " +
            "decoded together in batches; temperature 0 is greedy decoding. Stop with Ctrl+C.")
        {
            model, adapter, host, port, apiKey, embeddingModel, pooling, normalize, modelId, maxBatch, maxQueue, maxTokens, maxBody,
        };
        command.SetAction(parseResult =>
        {
            var engine = GlobalOptions.Apply(parseResult);
            var given = parseResult.GetValue(model)!;
            var directory = HubModels.Resolve(given);
            var options = new ServerOptions
            {
                Host = parseResult.GetValue(host)!,
                Port = parseResult.GetValue(port),
                ApiKey = parseResult.GetValue(apiKey) ?? (Environment.GetEnvironmentVariable("SHARPTUNE_API_KEY") is { Length: > 0 } key ? key : null),
                MaxTokensLimit = parseResult.GetValue(maxTokens),
                MaxRequestBodyBytes = parseResult.GetValue(maxBody),
            };
            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
            var strategy = parseResult.GetValue(pooling) == "cls" ? PoolingStrategy.Cls : PoolingStrategy.Mean;
            var causal = IsCausalLM(directory);
            if (!causal && parseResult.GetValue(adapter) is not null)
                throw new UsageException($"{directory} is not a causal LM: --adapter applies to the served causal LM");
            if (!causal && parseResult.GetValue(embeddingModel) is not null)
                throw new UsageException($"{directory} is not a causal LM: serve one encoder with --model, or a causal LM with --model and an encoder with --embedding-model");
            var encoderGiven = causal ? parseResult.GetValue(embeddingModel) : given;
            // An encoder given as --model was resolved above: no second Hub lookup.
            var encoderDirectory = causal ? HubModels.ResolveOptional(encoderGiven) : directory;

            using var language = causal
                ? LanguageModelService.FromPretrained(directory, new LanguageModelOptions
                {
                    AdapterDirectory = HubModels.ResolveOptional(parseResult.GetValue(adapter)),
                    Device = engine.Device,
                    DType = engine.DType,
                    ModelId = parseResult.GetValue(modelId) ?? HubId(given),
                    Batching = new BatchingOptions { MaxBatchSize = parseResult.GetValue(maxBatch), MaxQueuedRequests = parseResult.GetValue(maxQueue) },
                })
                : null;
            using var embeddings = encoderDirectory is null
                ? null
                : SharpTuneEmbeddingGenerator.FromPretrained(encoderDirectory, strategy, parseResult.GetValue(normalize),
                    new PipelineOptions { Device = engine.Device, DType = engine.DType }, HubId(encoderGiven));
            var server = SharpTuneServer.Create(options, language, embeddings);
            try
            {
                server.StartAsync().GetAwaiter().GetResult();
                var served = string.Join(", ", new[] { language?.ModelId, embeddings?.ModelId }.OfType<string>());
                Console.Error.WriteLine($"serving {served} on {server.Address} (OpenAI-compatible API under /v1{(options.ApiKey is null ? "" : ", API key required")}); Ctrl+C stops");
                server.RunAsync().GetAwaiter().GetResult();
            }
            finally
            {
                server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>A model given by Hub id is served under that id (its snapshot folder is named by a commit hash).</summary>
    private static string? HubId(string? given) => given is not null && Hub.PretrainedPath.IsHubId(given) ? given : null;

    private static bool IsCausalLM(string directory)
    {
        var config = PretrainedConfig.FromDirectory(directory);
        return AutoModel.Registrations.Any(r => r.Task == ModelTask.CausalLM && r.ModelType == config.ModelType);
    }
}
