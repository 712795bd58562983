namespace SharpTune.Generation;

/// <summary>
/// Instruction prompts in the Alpaca format the Dolly subset (<c>data/dolly_subset</c>) is written in:
/// a preamble, <c>### Instruction:</c>, an optional <c>### Input:</c> with context, and <c>### Response:</c>
/// after which the model writes its answer.
/// </summary>
public static class AlpacaTemplate
{
    private const string Preamble = "Below is an instruction that describes a task. Write a response that appropriately completes the request.";
    private const string PreambleWithInput =
        "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.";

    /// <summary>The prompt for <paramref name="instruction"/> (and its context, when given), ending with "### Response:".</summary>
    public static string Format(string instruction, string? input = null) =>
        string.IsNullOrEmpty(input)
            ? $"{Preamble}\n\n### Instruction:\n{instruction}\n\n### Response:"
            : $"{PreambleWithInput}\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:";
}
