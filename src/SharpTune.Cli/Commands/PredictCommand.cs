using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Cli.Infrastructure;
using SharpTune.Hub;
using SharpTune.Data;
using SharpTune.IO;
using SharpTune.Pipelines;
using SharpTune.Training.Heads;
using Spectre.Console;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune predict</c>: runs an inference pipeline (transformers' <c>pipeline()</c>) over texts, prints a
/// table of the first results and writes every result as JSON Lines.</summary>
public static class PredictCommand
{
    private const int ShownRows = 10;

    /// <summary>NaN and ±Infinity (a diverged model) are written as the JSON strings "NaN", "Infinity" and "-Infinity",
    /// which strict JSON readers accept and .NET and pandas (<c>float("NaN")</c>) read back; the command warns when it does.</summary>
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face model folder (config.json, safetensors weights, tokenizer).", Required = true };
        var task = new Option<string>("--task")
        {
            Description = "text-classification (labels with scores from id2label), feature-extraction (embeddings), " +
                          "fill-mask (top-k fills of each [MASK]) or text-generation (continuations of each prompt).",
            Required = true,
        };
        task.AcceptOnlyFromAmong([.. Pipeline.Tasks]);
        var text = new Option<string[]>("--text") { Description = "A text to run on (repeatable).", AllowMultipleArgumentsPerToken = false };
        var input = new Option<string?>("--input")
        {
            Description = "File of texts: .txt (one text per line; blank lines skipped), or JSONL / CSV / TSV / Parquet with the texts in --text-column.",
        };
        var textColumn = new Option<string>("--text-column") { Description = "Column (or JSON field) of --input holding the texts; alternatives separated by '|' (e.g. 'sentence|content') pick the first the file has.", DefaultValueFactory = _ => "text" };
        var output = new Option<string?>("--output", "-o") { Description = "Write one JSON result per input to this JSONL file (written atomically; - for standard output)." };
        var skipBadRows = new Option<bool>("--skip-bad-rows") { Description = "Skip --input rows that are malformed or have an empty text (they are listed on standard error) instead of stopping." };
        var topK = new Option<int?>("--top-k")
        {
            Description = "text-classification: labels per text (default 1; 0 for all); fill-mask: fills per mask (default 5); " +
                          "text-generation: sample among the k most likely tokens.",
        };
        var adapter = new Option<string?>("--adapter") { Description = "LoRA adapter folder (adapter_config.json + adapter_model.safetensors) to apply." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer file or folder (default: the model folder)." };
        var batchSize = new Option<int>("--batch-size") { Description = "Texts per forward pass (sorted by length, padded per batch).", DefaultValueFactory = _ => 8 };
        var maxLength = new Option<int?>("--max-length") { Description = "Tokens per text for the encoder tasks; longer texts are truncated (default: the model's maximum)." };
        var pooling = new Option<string>("--pooling")
        {
            Description = "feature-extraction: mean, cls or max for one embedding per text, or none for every token's embedding.",
            DefaultValueFactory = _ => "mean",
        };
        pooling.AcceptOnlyFromAmong("mean", "cls", "max", "none");
        var normalize = new Option<bool>("--normalize") { Description = "feature-extraction: L2-normalise the embeddings." };
        var maxNewTokens = new Option<int?>("--max-new-tokens") { Description = "text-generation: tokens to generate (default: generation_config.json's, else 20)." };
        var temperature = new Option<double?>("--temperature") { Description = "text-generation: sample with this temperature (greedy otherwise, reproducible with --seed)." };
        var topP = new Option<double?>("--top-p") { Description = "text-generation: sample within the smallest set of tokens whose probability reaches p." };
        var repetitionPenalty = new Option<double?>("--repetition-penalty") { Description = "text-generation: penalise tokens already in the sequence (>1 discourages repeats)." };
        var returnFullText = new Option<bool>("--return-full-text")
        {
            Description = "text-generation: the prompt followed by the continuation (true, as transformers) or the continuation only (false).",
            DefaultValueFactory = _ => true,
        };

        var command = new Command("predict",
            "Run a model on texts as a Hugging Face pipeline: text-classification, feature-extraction, fill-mask or text-generation. " +
            "Prints a table of the first results; --output writes every result as JSON Lines, one per input, in input order.")
        {
            model, task, text, input, textColumn, output, topK, adapter, tokenizer, batchSize, maxLength, pooling, normalize,
            maxNewTokens, temperature, topP, repetitionPenalty, returnFullText, skipBadRows,
        };
        command.SetAction(parseResult =>
        {
            var engine = GlobalOptions.Apply(parseResult);
            var taskName = parseResult.GetValue(task)!;
            var directory = HubModels.Resolve(parseResult.GetValue(model)!);
            if (!Directory.Exists(directory))
                throw new DirectoryNotFoundException($"--model folder not found: {directory}");
            var texts = ReadTexts(parseResult.GetValue(text) ?? [], parseResult.GetValue(input), parseResult.GetValue(textColumn)!, parseResult.GetValue(skipBadRows));
            if (parseResult.GetValue(batchSize) < 1)
                throw new UsageException($"--batch-size must be at least 1, got {parseResult.GetValue(batchSize)}");
            if (parseResult.GetValue(maxLength) is < 2)
                throw new UsageException($"--max-length must be at least 2 tokens, got {parseResult.GetValue(maxLength)}");
            if (parseResult.GetValue(topK) is < 0)
                throw new UsageException($"--top-k must be 0 or more, got {parseResult.GetValue(topK)}");
            var options = new PipelineOptions
            {
                Device = engine.Device,
                DType = engine.DType,
                BatchSize = parseResult.GetValue(batchSize),
                MaxLength = parseResult.GetValue(maxLength),
                AdapterDirectory = HubModels.ResolveOptional(parseResult.GetValue(adapter)),
                TokenizerPath = HubModels.ResolveOptional(parseResult.GetValue(tokenizer), HubFileSelection.Tokenizer),
            };

            using var pipeline = Pipeline.Create(taskName, directory, options);
            Func<IReadOnlyList<string>, IEnumerable<JsonObject>> run = pipeline switch
            {
                TextClassificationPipeline classifier => chunk =>
                {
                    var k = parseResult.GetValue(topK) ?? 1;
                    return classifier.Predict(chunk, k == 0 ? null : k).Select((labels, i) => Result(chunk[i], "labels", labels));
                },
                FillMaskPipeline fill => chunk => fill.Fill(chunk, parseResult.GetValue(topK) is { } k and > 0 ? k : 5)
                    .Select((masks, i) => Result(chunk[i], "masks", masks)),
                FeatureExtractionPipeline extractor => parseResult.GetValue(pooling) == "none"
                    ? chunk => extractor.TokenEmbeddings(chunk, parseResult.GetValue(normalize)).Select((tokens, i) =>
                        Result(chunk[i], "tokens", tokens.Tokens, ("embeddings", tokens.Vectors)))
                    : chunk => extractor.SentenceEmbeddings(chunk, Pooling.Parse(parseResult.GetValue(pooling)!), parseResult.GetValue(normalize))
                        .Select((vector, i) => Result(chunk[i], "embedding", vector)),
                TextGenerationPipeline generator => GenerationRun(generator, parseResult, engine.Seed, maxNewTokens, temperature, topK, topP,
                    repetitionPenalty, parseResult.GetValue(returnFullText)),
                _ => throw new InvalidOperationException($"no output format for {pipeline.Task}"),
            };

            var results = new List<JsonObject>(texts.Count);
            var chunkSize = options.BatchSize * 8;
            CliProgress.Run(taskName, texts.Count, report =>
            {
                for (var start = 0; start < texts.Count; start += chunkSize)
                {
                    results.AddRange(run(texts.GetRange(start, Math.Min(chunkSize, texts.Count - start))));
                    report(results.Count, $"{results.Count:N0}/{texts.Count:N0}");
                }
            });

            var path = parseResult.GetValue(output);
            // With --output - (or a device) the results are standard output's; the table and notes go to standard error.
            var console = path is not null && AtomicFile.IsStream(path)
                ? AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) })
                : AnsiConsole.Console;
            console.Write(Table(taskName, results));
            if (results.Count > ShownRows)
                console.MarkupLine($"[grey]... {results.Count - ShownRows:N0} more{(path is null ? "; write them all with --output FILE.jsonl" : "")}[/]");
            if (results.Count(HoldsNonFinite) is > 0 and var nonFinite)
                Console.Error.WriteLine($"warning: {nonFinite:N0} result(s) hold NaN or infinite scores (the model's output is not finite; " +
                                        "check its weights); they are written as the JSON strings \"NaN\", \"Infinity\", \"-Infinity\"");
            if (path is not null)
            {
                AtomicFile.Write(path, stream =>
                {
                    using var writer = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true);
                    foreach (var result in results)
                        writer.Write(result.ToJsonString() + "\n");
                });
                console.MarkupLine($"wrote {results.Count:N0} result(s) to {Markup.Escape(path)}");
            }
            return ExitCodes.Success;
        });
        return command;
    }

    private static Func<IReadOnlyList<string>, IEnumerable<JsonObject>> GenerationRun(TextGenerationPipeline generator, ParseResult parseResult, long? seed,
        Option<int?> maxNewTokens, Option<double?> temperature, Option<int?> topK, Option<double?> topP, Option<double?> repetitionPenalty, bool fullText)
    {
        var defaults = generator.GenerationConfig;
        var sampling = parseResult.GetValue(temperature) is not null || parseResult.GetValue(topP) is not null || parseResult.GetValue(topK) is not null;
        var config = defaults with
        {
            MaxNewTokens = parseResult.GetValue(maxNewTokens) ?? defaults.MaxNewTokens,
            DoSample = sampling || defaults.DoSample,
            Temperature = parseResult.GetValue(temperature) ?? defaults.Temperature,
            TopK = parseResult.GetValue(topK) ?? defaults.TopK,
            TopP = parseResult.GetValue(topP) ?? defaults.TopP,
            RepetitionPenalty = parseResult.GetValue(repetitionPenalty) ?? defaults.RepetitionPenalty,
            Seed = seed,
        };
        return chunk => generator.Generate(chunk, config, fullText).Select((generated, i) => Result(chunk[i], "generated_text", generated.Text,
            ("new_tokens", generated.TokenIds.Count), ("finish_reason", generated.FinishReason.ToString())));
    }

    /// <summary>One JSONL record: the input text and the task's fields.</summary>
    private static JsonObject Result(string text, string key, object value, params (string Key, object Value)[] more)
    {
        var result = new JsonObject { ["text"] = text, [key] = JsonSerializer.SerializeToNode(value, Json) };
        foreach (var (name, extra) in more)
            result[name] = JsonSerializer.SerializeToNode(extra, Json);
        return result;
    }

    private static List<string> ReadTexts(string[] texts, string? input, string column, bool skipBadRows)
    {
        if ((texts.Length > 0) == (input is not null))
            throw new UsageException("give the texts with --text TEXT (repeatable) or --input FILE, not both");
        if (input is null)
            return [.. texts];
        if (!File.Exists(input))
            throw new FileNotFoundException($"--input file not found: {input}", input);
        if (Path.GetExtension(input).Equals(".txt", StringComparison.OrdinalIgnoreCase))
        {
            TextFiles.EnsureUtf8(input);
            var lines = File.ReadAllLines(input).Where(l => !string.IsNullOrWhiteSpace(l)).ToList();
            return lines.Count > 0 ? lines : throw new InvalidDataException($"{input} holds no text");
        }
        var (dataset, badRows) = DatasetLoader.LoadWithReport(input,
            new DatasetLoadOptions { ExpectedColumns = [.. TextClassificationColumns.Alternatives(column)], SkipBadRows = skipBadRows });
        var skipped = badRows.ToList();
        var found = TextClassificationColumns.Resolve(dataset, column)
                    ?? throw new UsageException($"{input} has no column '{column}' (it has: {string.Join(", ", dataset.ColumnNames)}); name the text column with --text-column");
        var values = dataset.Column(found);
        var result = new List<string>(values.Count);
        for (var i = 0; i < values.Count; i++)
        {
            if (!string.IsNullOrWhiteSpace(values[i]))
                result.Add(values[i]!);
            else if (skipBadRows)
                skipped.Add(new BadRow(dataset.Origin(i), $"empty text in column '{found}'"));
            else
                throw new InvalidDataException($"{dataset.Origin(i)}: empty text in column '{found}' (or skip such rows with --skip-bad-rows)");
        }
        if (skipped.Count > 0)
            Console.Error.WriteLine($"warning: skipped {skipped.Count:N0} bad row(s), so output lines do not follow input lines: " +
                                    string.Join("; ", skipped.Take(5)) + (skipped.Count > 5 ? "; ..." : ""));
        return result.Count > 0 ? result : throw new InvalidDataException($"{input} holds no rows");
    }

    /// <summary>The first results, readable: labels, fills, embedding summaries or generations per text.</summary>
    private static Table Table(string task, IReadOnlyList<JsonObject> results)
    {
        var table = new Table().Border(TableBorder.Rounded);
        var columns = task switch
        {
            Pipeline.TextClassification => new[] { "text", "label", "score" },
            Pipeline.FillMask => ["text", "fills (score)"],
            Pipeline.FeatureExtraction => ["text", "shape", "values"],
            _ => ["prompt", "generated text", "tokens"],
        };
        foreach (var column in columns)
            table.AddColumn(column);
        foreach (var result in results.Take(ShownRows))
        {
            var cells = task switch
            {
                Pipeline.TextClassification => Classification(result["labels"]!.AsArray()),
                Pipeline.FillMask => [string.Join("\n", result["masks"]!.AsArray().Select(m => string.Join(", ",
                    m!["candidates"]!.AsArray().Select(c => $"{c!["token_str"]} ({F(c["score"]!)})"))))],
                Pipeline.FeatureExtraction => Embedding(result),
                _ => [result["generated_text"]!.GetValue<string>(), result["new_tokens"]!.ToJsonString()],
            };
            table.AddRow([Markup.Escape(Shorten(result["text"]!.GetValue<string>())), .. cells.Select(Markup.Escape)]);
        }
        return table;
    }

    private static string[] Classification(JsonArray labels) =>
        [string.Join("\n", labels.Select(l => l!["label"]!.GetValue<string>())), string.Join("\n", labels.Select(l => F(l!["score"]!)))];

    private static string[] Embedding(JsonObject result)
    {
        var vector = (result["embedding"] ?? result["embeddings"]!.AsArray()[0])!.AsArray();
        var shape = result["embedding"] is not null ? $"[{vector.Count}]" : $"[{result["embeddings"]!.AsArray().Count}, {vector.Count}]";
        return [shape, string.Join(", ", vector.Take(4).Select(v => F(v!))) + (vector.Count > 4 ? ", ..." : "")];
    }

    /// <summary>Texts that may read "NaN" themselves; every other string "NaN"/"Infinity" is a non-finite number.</summary>
    private static readonly HashSet<string> TextKeys = ["text", "generated_text", "label", "token_str", "sequence", "tokens", "finish_reason"];

    private static bool HoldsNonFinite(JsonNode? node) => node switch
    {
        JsonObject record => record.Any(p => !TextKeys.Contains(p.Key) && HoldsNonFinite(p.Value)),
        JsonArray items => items.Any(HoldsNonFinite),
        JsonValue value => value.GetValueKind() == JsonValueKind.String && value.GetValue<string>() is "NaN" or "Infinity" or "-Infinity",
        _ => false,
    };

    /// <summary>A score for the table; NaN and infinities arrive as strings (see <see cref="Json"/>).</summary>
    private static string F(JsonNode value) => value.GetValueKind() == JsonValueKind.String
        ? value.GetValue<string>()
        : value.GetValue<double>().ToString("F4", CultureInfo.InvariantCulture);

    private static string Shorten(string text) => text.Length > 80 ? text[..77] + "..." : text;
}
