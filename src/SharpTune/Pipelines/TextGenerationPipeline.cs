using SharpTune.Generation;
using SharpTune.Models;

namespace SharpTune.Pipelines;

/// <summary>One generation (transformers' <c>generated_text</c>), with the new token ids and why it stopped.</summary>
public sealed record GeneratedText(string Text, IReadOnlyList<long> TokenIds, FinishReason FinishReason);

/// <summary>
/// <c>text-generation</c>: continues each prompt with a causal LM through <see cref="TextGenerator"/> (greedy or
/// sampled per the <see cref="GenerationConfig"/>; prompts of a batch are left-padded). As in transformers, the text
/// returned is the prompt followed by the continuation unless <c>returnFullText</c> is false.
/// </summary>
public sealed class TextGenerationPipeline : Pipeline
{
    private readonly PromptTokenizer _prompts;
    private readonly TextGenerator _generator;

    private TextGenerationPipeline(string modelDirectory, PreTrainedModel model, PromptTokenizer prompts, PipelineOptions options)
        : base(TextGeneration, modelDirectory, model, prompts.Tokenizer, options)
    {
        _prompts = prompts;
        _generator = new TextGenerator(model as ICausalLM ?? throw new InvalidDataException($"{modelDirectory}: {model.GetType().Name} is not a causal language model"),
            prompts.Decode);
        var defaults = GenerationConfig.FromPretrained(modelDirectory);
        // transformers' max_length default (20 tokens in all) would leave nothing to generate after a long prompt.
        GenerationConfig = defaults with { MaxNewTokens = defaults.MaxNewTokens ?? (defaults.MaxLength is null ? 20 : null) };
    }

    public static TextGenerationPipeline FromPretrained(string modelDirectory, PipelineOptions? options = null)
    {
        (modelDirectory, options) = ResolvePaths(modelDirectory, options);
        var prompts = PromptTokenizer.FromPretrained(options.TokenizerPath ?? modelDirectory);
        var model = LoadModel(TextGeneration, modelDirectory, ModelTask.CausalLM, options, requireTrainedHead: true);
        try
        {
            return new TextGenerationPipeline(modelDirectory, model, prompts, options);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The model folder's generation defaults (generation_config.json), with 20 new tokens when it sets no length.
    /// Override fields with <c>with</c> and pass the result to <see cref="Generate(IReadOnlyList{string}, GenerationConfig?, bool, CancellationToken)"/>.</summary>
    public GenerationConfig GenerationConfig { get; }

    public GeneratedText Generate(string prompt, GenerationConfig? config = null, bool returnFullText = true) =>
        Generate([prompt], config, returnFullText)[0];

    /// <summary>Continues each prompt (in batches of <see cref="PipelineOptions.BatchSize"/>).</summary>
    public IReadOnlyList<GeneratedText> Generate(IReadOnlyList<string> prompts, GenerationConfig? config = null, bool returnFullText = true,
        CancellationToken cancellation = default)
    {
        config ??= GenerationConfig;
        var encoded = prompts.Select((p, i) => _prompts.Encode(p) is { Count: > 0 } ids ? ids
            : throw new ArgumentException($"text-generation {Describe(i, p)} encodes to no tokens: give some text")).ToList();
        var results = new List<GeneratedText>(prompts.Count);
        for (var start = 0; start < prompts.Count; start += Options.BatchSize)
        {
            var count = Math.Min(Options.BatchSize, prompts.Count - start);
            var run = _generator.Generate(encoded.GetRange(start, count), config, cancellationToken: cancellation);
            for (var i = 0; i < count; i++)
            {
                var generated = run.Generated(i);
                var continuation = Continuation(run.Sequences[i], run.PromptLengths[i]);
                results.Add(new GeneratedText(returnFullText ? prompts[start + i] + continuation : continuation, generated, run.FinishReasons[i]));
            }
        }
        return results;
    }

    /// <summary>The generated text as transformers cuts it: the whole sequence decoded, minus the decoded prompt's
    /// length, so a continuation keeps the space a tokenizer only renders in context.</summary>
    private string Continuation(IReadOnlyList<long> sequence, int promptLength)
    {
        var all = _prompts.Decode(sequence);
        var prompt = _prompts.Decode(sequence.Take(promptLength).ToList());
        return all.StartsWith(prompt, StringComparison.Ordinal) ? all[prompt.Length..] : _prompts.Decode(sequence.Skip(promptLength).ToList());
    }
}
